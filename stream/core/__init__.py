"""Pure stream logic: device-local hours, windows, watermarks, health. No I/O, no Faust."""

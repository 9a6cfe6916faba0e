"""The Faust stream worker: agents (thin adapters) over the pure logic and the sinks."""

"""``python -m wattstream``: the same as the ``wattstream`` command."""

from wattstream.cli import main

if __name__ == "__main__":
    main()

"""``python -m sipbox``: the same as the ``sipbox`` command, for when the script is not on PATH."""

from sipbox.cli import main

if __name__ == "__main__":
    main()

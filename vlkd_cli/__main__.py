"""`python -m vlkd_cli` runs the command-line interface."""

from vlkd_cli.cli import main

if __name__ == "__main__":
    main()

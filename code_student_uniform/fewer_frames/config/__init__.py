"""Every setting with its one default (settings.py), and the shared flags that the
binaries read into them (command_line.py, imported only by binaries)."""

"""Reservkort reader bridge: a workstation program that watches PC/SC readers
and pushes the serial of an inserted card to the back office in the browser
(Server-Sent Events on a loopback HTTP server).

Run it with ``python -m reader_bridge --help``. It imports nothing from the
server code; its only third-party dependency is pyscard.
"""

__version__ = "1.0.0"

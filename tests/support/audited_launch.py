"""Run launcher.py with an audit hook that records every outgoing connection and name lookup.

Usage: python audited_launch.py AUDIT_LOG launcher.py [args...]. Each line of AUDIT_LOG is one
event: ``connect <address>`` or ``getaddrinfo <host>``. The privacy tests read it.
"""

import runpy
import sys

audit_path, script, *script_args = sys.argv[1:]
audit_file = open(audit_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process


def record(event: str, args: tuple) -> None:
    if event == "socket.connect":
        audit_file.write(f"connect {args[1]!r}\n")
    elif event == "socket.getaddrinfo":
        audit_file.write(f"getaddrinfo {args[0]!r}\n")


sys.addaudithook(record)
audit_file.write("hook-installed\n")
sys.argv = [script, *script_args]
runpy.run_path(script, run_name="__main__")

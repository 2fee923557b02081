"""cli stage of sendguard (see sendguard.pipeline for the flow).

The top layer: it parses arguments, calls the parts below and prints. Its commands import
what they run inside the command function, on purpose: `main` loads a command's module only
when it is used, and a command loads only its own parts, so ``sendguard --help``, ``queue
list`` or ``users add`` never pay for the detectors, the extraction pool or the relay. No
import cycle can pass through here (tests/unit/test_layers.py).
"""

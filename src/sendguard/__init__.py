"""sendguard: an outgoing-mail misdelivery guard for Japanese offices.

Start reading at `sendguard.pipeline`, which is the whole flow of one message.
"""

__version__ = "0.1.0"

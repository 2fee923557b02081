"""A raw SMTP client on asyncio streams, for tests that need control over every byte and pause
(the relay runs in the same loop, so a blocking client like smtplib would need a thread)."""

from __future__ import annotations

import asyncio

ENVELOPE = b"MAIL FROM:<a@example.jp>\r\nRCPT TO:<b@partner.test>\r\n"
HEADERS = b"From: a@example.jp\r\nTo: b@partner.test\r\nSubject: wire\r\n\r\n"


class Wire:
    """One connection: `await Wire.open(port)`, then commands and replies as text."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Wire:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        wire = cls(reader, writer)
        greeting = await wire.reply()
        assert greeting.startswith("220"), greeting
        return wire

    async def reply(self, timeout: float = 10.0) -> str:  # noqa: ASYNC109  # a test's bound
        """The next reply (the last line of a multi-line one); "" if the connection closed."""
        async with asyncio.timeout(timeout):
            while True:
                line = await self.reader.readline()
                if not line:
                    return ""
                if line[3:4] != b"-":
                    return line.decode().rstrip("\r\n")

    async def command(self, line: bytes | str) -> str:
        raw = line.encode() if isinstance(line, str) else line
        await self.send(raw + b"\r\n")
        return await self.reply()

    async def send(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()

    async def start_data(self) -> None:
        """EHLO, MAIL, RCPT, DATA — each checked — up to the 354."""
        assert (await self.command("EHLO client.test")).startswith("250")
        await self.send(ENVELOPE)
        assert (await self.reply()).startswith("250")
        assert (await self.reply()).startswith("250")
        assert (await self.command("DATA")).startswith("354")

    async def message(self, body: bytes) -> str:
        """A whole transaction with `body` (CRLF-terminated, dot-stuffed by the caller)."""
        await self.start_data()
        await self.send(body + b".\r\n")
        return await self.reply()

    async def rest(self, timeout: float = 10.0) -> bytes:  # noqa: ASYNC109  # a test's bound
        """Everything the relay still sends until it closes the connection."""
        async with asyncio.timeout(timeout):
            return await self.reader.read()

    def close(self) -> None:
        self.writer.close()

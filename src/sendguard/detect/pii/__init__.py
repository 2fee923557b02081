"""Helpers of the `personal-data` detector: checksums, masks, patterns, text and table scans."""

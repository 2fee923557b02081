"""cli stage of sendguard (see sendguard.pipeline for the flow)."""

"""STAND-INS for IBM's proprietary parts that cannot be installed here. Not IBM code."""

"""Bridges to other tools' plug-in systems (entry level: they load trained models through ``vlmkit.load``)."""

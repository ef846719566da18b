"""Generated from nexus/messaging/envelope.fbs by scripts/regen_flatbuffers.py; do not edit."""

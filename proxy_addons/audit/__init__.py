"""Audit trail: ECS record builder, sink (chain, writer, checkpoints), verify."""

"""Syrinx server: transport, scheduler, engine and audio layers."""

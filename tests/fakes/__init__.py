"""Fakes that behave like the real Saleor and VTmarketing, served over real HTTP on 127.0.0.1."""

# Makefile templates (package data of zmake.templates).

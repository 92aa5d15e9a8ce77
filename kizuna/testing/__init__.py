"""Shared pytest plugins: personas (users) and the Playwright browser.

Registered in the root conftest.py, so every test module can use their fixtures.
"""

"""Tests of the openshell CLI client."""

"""What a completed layout becomes: DXF, PNG views, the HTML report, CSV and IFC.

Reads the engine's rooms and certificates; imported only by commands and
assets that export, so matplotlib, ezdxf and ifcopenshell stay out of the rest.
"""

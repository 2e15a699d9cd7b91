"""nuPlan maps: GeoPackage layers read and written, compiled into compact cached arrays behind ``MapAPI``."""

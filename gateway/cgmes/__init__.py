"""CIM both ways: the site as a CGMES 3.0 network model (export) and a site skeleton from one (import).

``vocab`` holds the CGMES names, ``topology`` the connectivity gridgate derives from the site's
bays, ``export`` writes RDF/XML with lxml, ``model``/``reader`` parse it back (lxml, streaming) and
``importer`` turns a parsed model into a site YAML skeleton. ``cli`` registers ``gridgate cim``.
"""

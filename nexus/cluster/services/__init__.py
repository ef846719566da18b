"""The cluster services: failure detection (:mod:`.phi`) and where identities live (:mod:`.placement`).

Membership backends and the identity directory of virtual actors build on
these (DESIGN.md, "Cluster services"). Both modules here are pure logic: the
caller passes the time and the members.
"""

#!/usr/bin/python3
"""Write podenv-config(5) from `podenv config schema`.

The JSON schema comes from the same table in config/schema.c that drives
parsing and defaults, so this page and the schema cannot drift apart.

    podenv config schema | packaging/gen-config-man.py VERSION > podenv-config.5
"""
import json
import sys


def esc(text):
    """Escape text for roff: backslashes, and a leading . or ' on a line."""
    text = str(text).replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def type_name(node):
    """A short human name for a schema node's type."""
    if "enum" in node:
        return "one of " + ", ".join(json.dumps(v) for v in node["enum"])
    if "anyOf" in node:
        names = []
        for alt in node["anyOf"]:
            name = type_name(alt)
            if name and name not in names:
                names.append(name)
        return " or ".join(names)
    t = node.get("type")
    if t is None:
        return "object" if "properties" in node else ""
    if isinstance(t, list):
        return " or ".join(type_name(dict(node, type=x)) for x in t)
    if t == "array":
        items = node.get("items")
        inner = type_name(items) if isinstance(items, dict) else ""
        return "array of " + inner + "s" if inner else "array"
    if t == "object" and isinstance(node.get("additionalProperties"), dict):
        inner = type_name(node["additionalProperties"])
        return "object (map of " + inner + ")" if inner else "object"
    if t == "integer":
        lo, hi = node.get("minimum"), node.get("maximum")
        if lo is not None and hi is not None and hi < 2**31 - 1:
            return "integer (%d..%d)" % (lo, hi)
        if lo is not None:
            return "integer (\u2265 %d)" % lo
    return t


def sub_objects(node):
    """The object schemas a node can take (itself, or its anyOf alternatives)."""
    if "properties" in node:
        yield node
    for alt in node.get("anyOf", []):
        yield from sub_objects(alt)
    items = node.get("items")
    if isinstance(items, dict) and "properties" in items:
        yield items


def fields(node, prefix):
    """(path, schema) for every field below node, depth first, schema order."""
    seen = set()
    for obj in sub_objects(node):
        for name, sub in obj["properties"].items():
            path = prefix + name
            if path in seen:
                continue
            seen.add(path)
            yield path, sub
            yield from fields(sub, path + ".")


def field_entry(path, node, out):
    out.append(".TP")
    out.append(".B " + esc(path))
    facts = []
    t = type_name(node)
    if t:
        facts.append("Type: " + t + ".")
    if "default" in node:
        facts.append("Default: " + json.dumps(node["default"]) + ".")
    desc = node.get("description")
    out.append(esc(" ".join(facts)))
    if desc:
        out.append(".br")
        out.append(esc(desc))


HEAD = r""".TH PODENV\-CONFIG 5 "" "podenv %(version)s" "File Formats Manual"
.SH NAME
podenv\-config \- podenv's configuration file (mirrord's format)
.SH SYNOPSIS
.I .mirrord/mirrord.json
(also
.IR .yaml ,
.IR .yml ),
or the file named by
.B \-f
or
.BR $MIRRORD_CONFIG_FILE .
.SH DESCRIPTION
podenv reads mirrord's configuration format unchanged.
Without
.BR \-f ,
podenv reads
.BR $MIRRORD_CONFIG_FILE ,
else
.I .mirrord/mirrord.json
in the working directory.
Unknown fields are errors; every error names the field by its JSON path.
.PP
.B podenv config check
prints the fully resolved configuration;
.B podenv config schema
prints the JSON Schema (installed as
.IR /usr/share/podenv/mirrord\-config.schema.json ).
This page is generated from that schema, which comes from the same table
podenv's parser uses, so the two always agree.
.PP
Fields are listed by their dotted path.
A field whose type includes
.B string
or
.B boolean
besides
.B object
accepts a shorthand for the whole object (for example
.B \(dqfeature.fs\(dq: \(dqwrite\(dq
sets
.BR feature.fs.mode ).
Fields marked "Ignored by podenv" are accepted for compatibility with
mirrord and have no effect.
"""

TAIL = r""".SH EXAMPLE
.EX
{
  "target": "pid/1234",
  "feature": {
    "fs": { "mode": "write", "local": ["^/app/cache"] },
    "network": { "outgoing": true, "dns": true }
  }
}
.EE
.SH SEE ALSO
.BR podenv (1),
.BR podenv\-agent (8),
.UR https://mirrord.dev/docs/reference/configuration/
mirrord's configuration reference
.UE
"""


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else ""
    src = open(sys.argv[2]) if len(sys.argv) > 2 else sys.stdin
    schema = json.load(src)
    out = [HEAD.rstrip("\n") % {"version": esc(version)}]
    top_scalars = []
    top_objects = []
    for name, sub in schema["properties"].items():
        (top_objects if any(True for _ in sub_objects(sub)) else top_scalars).append((name, sub))
    out.append(".SH FIELDS")
    out.append(".SS Top level")
    for name, sub in top_scalars:
        field_entry(name, sub, out)
    for name, sub in top_objects:
        out.append(".SS " + esc(name))
        field_entry(name, sub, out)
        for path, node in fields(sub, name + "."):
            field_entry(path, node, out)
    out.append(TAIL.rstrip("\n"))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks that scripts/test runs before a crates.io release.

  check-release.py metadata            reads `cargo metadata --no-deps
                                       --format-version 1` on stdin: every
                                       published package has the metadata a
                                       crates.io user expects, and no
                                       examples
  check-release.py docs DOC_DIR        the docs of graphyte as docs.rs builds
                                       them (`--cfg docsrs`, every feature):
                                       each feature-gated item shows its
                                       feature

Exits 1 with one line per problem.
"""

import json
import os
import sys

# In dependency order: the order they are published in.
PUBLISHED = ["graphyte-validate", "graphyte-macros", "graphyte", "graphyte-cli"]

# A repository or homepage that is a placeholder must not be published.
PLACEHOLDERS = ("example.invalid", "example.com", "example.org", "placeholder", "todo")


def check_metadata(metadata):
    problems = []
    packages = {p["name"]: p for p in metadata["packages"]}
    for name in PUBLISHED:
        p = packages.get(name)
        if p is None:
            problems.append(f"{name}: not a workspace member")
            continue
        if p.get("publish") == []:
            problems.append(f"{name}: publish = false")
        for field in ("description", "documentation", "license", "readme"):
            if not p.get(field):
                problems.append(f"{name}: no {field}")
        for field in ("keywords", "categories"):
            if not p.get(field):
                problems.append(f"{name}: no {field}")
        if len(p.get("keywords") or []) > 5:
            problems.append(f"{name}: more than 5 keywords (crates.io refuses them)")
        for field in ("repository", "homepage", "documentation"):
            value = (p.get(field) or "").lower()
            if any(h in value for h in PLACEHOLDERS):
                problems.append(f"{name}: {field} is a placeholder: {p.get(field)}")
        package_dir = os.path.dirname(p["manifest_path"])
        if not any(
            os.path.isfile(os.path.join(package_dir, f))
            for f in ("LICENSE", "LICENSE-MIT", "LICENSE.md", "LICENSE.txt")
        ):
            problems.append(f"{name}: no license file in {package_dir}")
        # Cargo builds a package's dev-dependencies for each of its examples:
        # those of a published package (TLS servers, tokio, ...) are not what
        # an example needs. Examples belong to the root package (examples/).
        for t in p["targets"]:
            if "example" in t["kind"]:
                problems.append(
                    f"{name}: example {t['name']} (move it to the root package's examples/)"
                )
        docs_rs = ((p.get("metadata") or {}).get("docs") or {}).get("rs") or {}
        if docs_rs.get("all-features") is not True:
            problems.append(f"{name}: [package.metadata.docs.rs] all-features is not true")
        args = docs_rs.get("rustdoc-args") or []
        if not any(a == "--cfg" and b == "docsrs" for a, b in zip(args, args[1:])):
            problems.append(f"{name}: [package.metadata.docs.rs] rustdoc-args lack --cfg docsrs")
    return problems


def badge(feature):
    return f"Available on <strong>crate feature <code>{feature}</code></strong> only"


def section(html, anchor):
    """The HTML of one item on a page: from its anchor to the next item's."""
    start = html.find(f'id="{anchor}"')
    if start < 0:
        return None
    end = html.find(' id="method.', start + 1)
    return html[start : end if end >= 0 else len(html)]


def check_docs(doc_dir):
    # (page, anchor of the item on the page or None for the page's own item, feature)
    expected = [
        ("graphyte/metrics/index.html", None, "metrics"),
        ("graphyte/struct.Tls.html", None, "tls"),
        ("graphyte/struct.TlsTransport.html", None, "tls"),
        ("graphyte/struct.Config.html", "method.tls", "tls"),
        ("graphyte/macro.count.html", None, "macros"),
        ("graphyte/macro.gauge.html", None, "macros"),
        ("graphyte/attr.timed.html", None, "macros"),
    ]
    problems = []
    for page, anchor, feature in expected:
        path = os.path.join(doc_dir, page)
        try:
            with open(path, encoding="utf-8") as f:
                html = f.read()
        except OSError as e:
            problems.append(f"{page}: not generated ({e})")
            continue
        where = html if anchor is None else section(html, anchor)
        if where is None:
            problems.append(f"{page}: no item {anchor}")
        elif badge(feature) not in where:
            what = page if anchor is None else f"{page}#{anchor}"
            problems.append(f"{what}: no badge 'Available on crate feature {feature} only'")
        else:
            print(f"ok: {page}{'#' + anchor if anchor else ''} shows feature {feature}")
    return problems


def main():
    if sys.argv[1:] == ["metadata"]:
        problems = check_metadata(json.load(sys.stdin))
        if not problems:
            print("ok: " + ", ".join(PUBLISHED))
    elif len(sys.argv) == 3 and sys.argv[1] == "docs":
        problems = check_docs(sys.argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

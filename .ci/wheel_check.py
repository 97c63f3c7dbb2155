"""Check fastloss's compiled modules for what a portable (manylinux) wheel must not carry.

    python .ci/wheel_check.py [--max-glibc 2.28] [--allow-symbols] WHEEL_OR_SO ...

For every extension module (inside each wheel, or each .so given): the newest GLIBC_ symbol
version it needs and the symbols that need it, its NEEDED libraries, RUNPATH/RPATH, debug
sections, whether it is stripped, and its size; then the wheel's size. Fails (exit 1) when a
module needs a glibc newer than --max-glibc, has a RUNPATH/RPATH, or carries debug info;
--allow-symbols also accepts unstripped symbol tables (an in-place development build).
Reads ELF with pyelftools (installed with auditwheel: pip install ".[release]").
"""
import argparse
import io
import os
import sys
import zipfile

try:
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection
except ImportError:  # pragma: no cover
    sys.exit("wheel_check: needs pyelftools (pip install '.[release]')")


def _version(v):
    return tuple(int(x) for x in v.split("."))


def inspect(name, data):
    """The facts about one ELF module, from its bytes."""
    elf = ELFFile(io.BytesIO(data))
    glibc, needed, runpath = {}, [], []
    for sec in elf.iter_sections():
        if isinstance(sec, DynamicSection):
            for tag in sec.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(tag.needed)
                elif tag.entry.d_tag in ("DT_RUNPATH", "DT_RPATH"):
                    runpath.append(getattr(tag, "runpath", None) or getattr(tag, "rpath", ""))
    # Which symbols need which version: .gnu.version gives each dynamic symbol's version index.
    verneed = elf.get_section_by_name(".gnu.version_r")
    index_to_version = {}
    if isinstance(verneed, GNUVerNeedSection):
        for _, auxes in verneed.iter_versions():
            for aux in auxes:
                index_to_version[aux.entry.vna_other] = aux.name
    versym = elf.get_section_by_name(".gnu.version")
    dynsym = elf.get_section_by_name(".dynsym")
    if versym is not None and dynsym is not None:
        for i, sym in enumerate(dynsym.iter_symbols()):
            ver = index_to_version.get(versym.get_symbol(i).entry["ndx"]
                                       if isinstance(versym.get_symbol(i).entry["ndx"], int)
                                       else -1)
            if ver and ver.startswith("GLIBC_") and sym.entry.st_shndx == "SHN_UNDEF":
                glibc.setdefault(ver[len("GLIBC_"):], []).append(sym.name)
    debug = sorted(s.name for s in elf.iter_sections() if s.name.startswith((".debug", ".zdebug")))
    stripped = elf.get_section_by_name(".symtab") is None
    newest = max(glibc, key=_version) if glibc else None
    return dict(name=name, size=len(data), needed=needed, runpath=runpath, debug=debug,
                stripped=stripped, glibc=glibc, newest=newest)


def modules(path):
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                if n.endswith(".so") or ".so." in os.path.basename(n):
                    yield n, z.read(n)
    else:
        with open(path, "rb") as f:
            yield path, f.read()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--max-glibc", default="2.28")
    ap.add_argument("--allow-symbols", action="store_true",
                    help="accept symbol tables (not stripped); debug info still fails")
    args = ap.parse_args(argv)
    limit = _version(args.max_glibc)
    problems = []
    for path in args.paths:
        if path.endswith(".whl"):
            print(f"{os.path.basename(path)}: {os.path.getsize(path) / 1e6:.2f} MB")
        for name, data in modules(path):
            m = inspect(name, data)
            print(f"  {name}: {m['size'] / 1e6:.2f} MB, glibc >= {m['newest'] or '-'}, "
                  f"needs {', '.join(m['needed'])}; "
                  f"{'stripped' if m['stripped'] else 'symbol table'}"
                  f"{', debug info' if m['debug'] else ''}"
                  f"{', RUNPATH ' + ':'.join(m['runpath']) if m['runpath'] else ''}")
            for ver in sorted(m["glibc"], key=_version):
                if _version(ver) > limit:
                    problems.append(f"{name}: needs GLIBC_{ver} (> {args.max_glibc}) for "
                                    f"{', '.join(sorted(m['glibc'][ver]))}")
            if m["runpath"]:
                problems.append(f"{name}: RUNPATH/RPATH {m['runpath']}")
            if m["debug"]:
                problems.append(f"{name}: debug sections {', '.join(m['debug'])}")
            if not m["stripped"] and not args.allow_symbols:
                problems.append(f"{name}: not stripped (.symtab present)")
    for p in problems:
        print("wheel_check: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Safe YAML: hostile documents are refused with the file and line, plain ones read as before."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pixelpipe.errors import PixelpipeError
from pixelpipe.safeyaml import MAX_ALIAS_NODES, MAX_DEPTH, parse


def bomb(levels: int = 9, width: int = 10, indent: str = "") -> str:
    """Nested anchors: level ``levels - 1`` expands to ``width ** levels`` leaves."""
    rows = [f"{indent}a0: &a0 [{', '.join(['lol'] * width)}]"]
    rows += [f"{indent}a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


def mapping_bomb(levels: int = 30) -> str:
    """Mappings that merge the previous level and hold it twice (2**30 leaves at the end)."""
    rows = ["m0: &m0 {k: 1}"]
    rows += [f"m{i}: &m{i} {{<<: *m{i - 1}, l: *m{i - 1}, r: *m{i - 1}}}" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


HOSTILE = [
    # The billion laughs: 10^9 leaves from ten short lines, refused on the line where the
    # aliases pass the limit (a4: 10 * (11 + 111 + 1111 + 11111) > 100000 nodes).
    (bomb(), rf"^x\.yaml:5: YAML expands to more than {MAX_ALIAS_NODES} nodes through aliases"),
    # The same bomb as the value of a key deep in a file, behind plain content.
    (
        "ingest:\n  source: data/raw\nx:\n" + bomb(indent="  "),
        r"^x\.yaml:8: YAML expands to more than",
    ),
    # A bomb of mappings and merge keys: every level holds the previous one twice.
    (mapping_bomb(), r"^x\.yaml:\d+: YAML expands to more than"),
    # A bomb in a mapping key (complex keys are composed like values).
    ("? " + bomb().replace("\n", "\n  ").rstrip() + "\n: 1\n", r"^x\.yaml:\d+: YAML expands"),
    # A Python tag is named as written, with its line; nothing is built from it.
    (
        "names: [a]\nx: !!python/object/apply:os.system ['echo pwned']\n",
        r"^x\.yaml:2: invalid YAML: tag '!!python/object/apply:os.system' is not allowed "
        r"\(only plain YAML is accepted: no tags\)$",
    ),
    # A Python tag on a mapping key.
    (
        "? !!python/name:os.system\n: 1\n",
        r"^x\.yaml:1: invalid YAML: tag '!!python/name:os\.system'",
    ),
    # A custom local tag.
    ("a:\n  b: !env HOME\n", r"^x\.yaml:2: invalid YAML: tag '!env' is not allowed"),
    # A sequence that contains itself (a structure that never ends when walked).
    ("a: &a [1, *a]\n", r"^x\.yaml:1: alias \*a is inside the node it names"),
    # A mapping that contains itself.
    ("a: &a\n  b:\n    c: *a\n", r"^x\.yaml:3: alias \*a is inside the node it names"),
    # Nesting deeper than the parser's recursion allows (was a RecursionError).
    ("[" * 5000 + "]" * 5000 + "\n", rf"^x\.yaml:1: YAML nests deeper than {MAX_DEPTH} levels"),
    # Deep nesting built from aliases of aliases (each level one deeper, few nodes).
    (
        "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200)),
        rf"^x\.yaml:\d+: YAML nests deeper than {MAX_DEPTH} levels",
    ),
    # An integer of 5000 digits (Python refuses to convert it: was a ValueError).
    ("seed: " + "1" * 5000 + "\n", r"^x\.yaml:1: invalid YAML: '1111.*' is not a 64-bit integer$"),
    # A hexadecimal integer of 5000 digits (builds, then crashes whatever prints it).
    ("seed: 0x" + "f" * 5000 + "\n", r"^x\.yaml:1: invalid YAML: '0xfff.*' is not a 64-bit"),
    # One past the unsigned 64-bit range.
    ("seed: 18446744073709551616\n", r"^x\.yaml:1: invalid YAML: '18446744073709551616' is not"),
    # A date that does not exist (was a ValueError from the date constructor).
    ("when: 2024-13-40\n", r"^x\.yaml:1: invalid YAML: !!timestamp value '2024-13-40' cannot be"),
    # A duplicate key, where it is.
    ("a:\n  b: 1\n  b: 2\n", r"^x\.yaml:3 a\.b: duplicate key$"),
    # An alias to an anchor that is not defined.
    ("a: *nowhere\n", r"^x\.yaml:1: invalid YAML: found undefined alias 'nowhere'$"),
]


@pytest.mark.parametrize(("text", "message"), HOSTILE)
def test_hostile_yaml_is_refused_with_file_and_line(text: str, message: str) -> None:
    with pytest.raises(PixelpipeError, match=message) as caught:
        parse(text, "x.yaml")
    assert len(caught.value.problems) == 1


PLAIN = [
    # Anchors that share settings, as real params files use them.
    (
        "defaults: &d {size: 224, flip: true}\ntrain: {<<: *d, flip: false}\nval: *d\n",
        {
            "defaults": {"size": 224, "flip": True},
            "train": {"size": 224, "flip": False},
            "val": {"size": 224, "flip": True},
        },
    ),
    # The largest integers 64 bits hold, signed and unsigned.
    ("a: -9223372036854775808\nb: 18446744073709551615\n", {"a": -(2**63), "b": 2**64 - 1}),
    # Explicit core tags are plain YAML.
    ("a: !!str 5\nb: !!float 1\n", {"a": "5", "b": 1.0}),
    # Nesting as deep as the limit.
    ("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n", None),
    # An empty file.
    ("", None),
]


@pytest.mark.parametrize(("text", "data"), PLAIN)
def test_plain_yaml_is_read(text: str, data: object) -> None:
    parsed = parse(text, "x.yaml")
    if data is not None:
        assert parsed.data == data


def test_a_key_set_again_after_a_merge_is_an_override_not_a_duplicate() -> None:
    parsed = parse("base: &b\n  x: 1\n  y: 2\ns:\n  <<: *b\n  x: 3\n", "x.yaml")
    assert parsed.data["s"] == {"x": 3, "y": 2}
    assert parsed.lines[("s", "x")] == 6  # the key the mapping sets itself
    assert parsed.lines[("s", "y")] == 3  # where the merged key is written


def test_aliases_up_to_the_limit_are_read() -> None:
    # 1000 aliases of a 99-node list add 99,000 nodes: a generous file, still read.
    text = "a: &a [" + ", ".join(["x"] * 98) + "]\nb:\n" + "  - *a\n" * 1000
    assert len(parse(text, "x.yaml").data["b"]) == 1000
    with pytest.raises(PixelpipeError, match=r"^x\.yaml:\d+: YAML expands to more than"):
        parse(text + "  - *a\n" * 20, "x.yaml")


def test_a_billion_laughs_is_refused_in_bounded_memory() -> None:
    """A 10^12-leaf bomb is refused before anything grows: the peak memory of the process
    does not move while it is read (and a 2 GB address-space limit stops a regression)."""
    code = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({2 << 30}, {2 << 30}))
        from pixelpipe.errors import PixelpipeError
        from pixelpipe.safeyaml import parse
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            parse({bomb(levels=12)!r}, "bomb.yaml")
        except PixelpipeError as exc:
            print(exc)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    message, grown_kb = result.stdout.splitlines()
    assert message.startswith("bomb.yaml:5: YAML expands to more than")
    assert int(grown_kb) < 10_000, grown_kb  # KiB

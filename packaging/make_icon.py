"""Draw the ctstudio application icon: ``resources/icons/ctstudio.svg`` and ``ctstudio.png`` (256 px).

The picture: a CT gantry ring with its table around an axial head slice (skull, brain, the midline
and a yellow region of interest) on a dark blue rounded square. The SVG is written from the same shapes as the PNG; run this again after
changing them::

    .venv/bin/python packaging/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resources" / "icons"

#: The shapes on a 256 x 256 canvas: (kind, box or points, fill, outline, width).
BACKGROUND = "#12304f"
SHAPES = [
    ("ellipse", (22, 22, 234, 234), None, "#5fa8d3", 14),      # gantry ring
    ("rect", (70, 196, 186, 208), "#5fa8d3", None, 0),        # patient table
    ("ellipse", (72, 46, 184, 190), "#e8e4da", None, 0),       # skull (bone window: white)
    ("ellipse", (81, 55, 175, 181), "#8a8a8a", None, 0),       # brain (grey matter)
    ("line", (128, 60, 128, 176), None, "#3a3a3a", 4),         # falx (the midline)
    ("ellipse", (110, 96, 146, 140), None, "#f2b134", 4),      # region of interest
]
CORNER = 48


def draw_png(size: int = 256) -> Image.Image:
    """The icon at ``size`` pixels (drawn at 4x and reduced, for smooth edges)."""
    scale = 4 * size / 256
    big = Image.new("RGBA", (int(256 * scale),) * 2, (0, 0, 0, 0))
    d = ImageDraw.Draw(big)
    d.rounded_rectangle((0, 0, big.width - 1, big.height - 1), radius=int(CORNER * scale), fill=BACKGROUND)
    for kind, box, fill, outline, width in SHAPES:
        xy = tuple(v * scale for v in box)
        if kind == "ellipse":
            d.ellipse(xy, fill=fill, outline=outline, width=int(width * scale))
        elif kind == "rect":
            d.rounded_rectangle(xy, radius=int(4 * scale), fill=fill)
        else:
            d.line(xy, fill=outline, width=int(width * scale))
    return big.resize((size, size), Image.Resampling.LANCZOS)


def svg_text() -> str:
    """The same picture as an SVG document."""
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">',
             "  <title>ctstudio</title>",
             f'  <rect x="0" y="0" width="256" height="256" rx="{CORNER}" fill="{BACKGROUND}"/>']
    for kind, (x0, y0, x1, y1), fill, outline, width in SHAPES:
        if kind == "ellipse":
            # PIL draws the outline inside the box; the SVG stroke is centred on the path.
            inset = width / 2
            style = f'fill="{fill or "none"}"' + (f' stroke="{outline}" stroke-width="{width}"' if outline else "")
            parts.append(f'  <ellipse cx="{(x0 + x1) / 2:g}" cy="{(y0 + y1) / 2:g}" rx="{(x1 - x0) / 2 - inset:g}" '
                         f'ry="{(y1 - y0) / 2 - inset:g}" {style}/>')
        elif kind == "rect":
            parts.append(f'  <rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" rx="4" fill="{fill}"/>')
        else:
            parts.append(f'  <line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="{outline}" stroke-width="{width}" '
                         'stroke-linecap="butt"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    draw_png(256).save(OUT / "ctstudio.png", optimize=True)
    (OUT / "ctstudio.svg").write_text(svg_text(), encoding="utf-8")
    print(f"wrote {OUT / 'ctstudio.png'} and {OUT / 'ctstudio.svg'}")


if __name__ == "__main__":
    main()

/**
 * The burst plot: a small line chart drawn as SVG by hand (no plotting library, nothing fetched) and
 * converted to PNG with librsvg's `rsvg-convert` from Debian.
 * @module
 */

/** One line of the chart: y values at the shared x values. */
export interface Series {
  label: string;
  color: string;
  ys: number[];
  /** An SVG stroke-dasharray, e.g. "7 5"; solid when absent. */
  dash?: string;
}

/** What the chart shows. */
export interface Chart {
  title: string;
  subtitle: string;
  xLabel: string;
  yLabel: string;
  xs: number[];
  series: Series[];
}

const W = 900;
const H = 560;
const M = { left: 80, right: 230, top: 70, bottom: 60 };

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** A round step for about `n` grid lines up to `max`. */
function niceStep(max: number, n = 6): number {
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)) ?? raw;
}

/** The chart as an SVG document. */
export function svgChart(c: Chart): string {
  const finite = c.series.flatMap((s) => s.ys).filter(Number.isFinite);
  const yStep = niceStep(Math.max(1, ...finite));
  const yMax = Math.ceil(Math.max(1, ...finite) / yStep) * yStep;
  const xMax = Math.max(...c.xs);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (v: number) => M.left + (v / xMax) * pw;
  const y = (v: number) => M.top + ph - (v / yMax) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.left}" y="30" font-size="20" font-weight="bold">${esc(c.title)}</text>`,
    `<text x="${M.left}" y="52" font-size="13" fill="#555">${esc(c.subtitle)}</text>`,
  ];
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    out.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#e3e3e3"/>`,
      `<text x="${M.left - 8}" y="${y(v) + 4}" font-size="12" text-anchor="end">${Math.round(v)}</text>`,
    );
  }
  for (const v of c.xs) {
    out.push(
      `<line x1="${x(v)}" x2="${x(v)}" y1="${M.top}" y2="${M.top + ph}" stroke="#f0f0f0"/>`,
      `<text x="${x(v)}" y="${M.top + ph + 18}" font-size="12" text-anchor="middle">${v}</text>`,
    );
  }
  out.push(
    `<line x1="${M.left}" x2="${M.left + pw}" y1="${M.top + ph}" y2="${M.top + ph}" stroke="#333"/>`,
    `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + ph}" stroke="#333"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 15}" font-size="14" text-anchor="middle">${esc(c.xLabel)}</text>`,
    `<text transform="translate(22 ${M.top + ph / 2}) rotate(-90)" font-size="14" text-anchor="middle">${
      esc(c.yLabel)
    }</text>`,
  );
  c.series.forEach((s, i) => {
    const pts = c.xs.map((v, j) => [v, s.ys[j]!] as const).filter(([, v]) => Number.isFinite(v));
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
    out.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2.5"${dash} points="${
        pts.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(" ")
      }"/>`,
      ...pts.map(([a, b]) =>
        `<circle cx="${x(a).toFixed(1)}" cy="${y(b).toFixed(1)}" r="4" fill="${s.color}"/>`
      ),
    );
    const ly = M.top + 10 + i * 24;
    const lx = M.left + pw + 20;
    out.push(
      `<line x1="${lx}" x2="${
        lx + 30
      }" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2.5"${dash}/>`,
      `<text x="${lx + 38}" y="${ly + 4}" font-size="13">${esc(s.label)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** Writes `svg` as a PNG at `pngPath` with rsvg-convert; returns an error text when that is not possible. */
export async function writePng(svg: string, pngPath: string): Promise<string | null> {
  const svgPath = pngPath.replace(/\.png$/, ".svg");
  await Deno.writeTextFile(svgPath, svg);
  try {
    const out = await new Deno.Command("rsvg-convert", {
      args: ["--format", "png", "--output", pngPath, svgPath],
      stdout: "null",
      stderr: "piped",
    }).output();
    return out.success ? null : `rsvg-convert failed: ${new TextDecoder().decode(out.stderr).trim()}`;
  } catch (e) {
    return `rsvg-convert not available (Debian package librsvg2-bin): ${e instanceof Error ? e.message : e}`;
  }
}

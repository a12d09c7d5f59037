"""The capture's `index.html`: one self-contained page (inline CSS, SVG drawn by an inline script,
the data embedded as JSON; nothing is fetched) with a flame graph and the top table per profile
type, the capture's facts (pod, reason, thresholds, observed usage, trace) and, when there is a
baseline, what grew since. Pure: values in, the page's text out; `kprof diff --html` and the
capture path (`execution.summaries`) write it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from kprof_lib.profiles import diff as diff_
from kprof_lib.profiles import summary as summaries
from kprof_lib.profiles import text

_FACTS = (
    ("namespace", "namespace"),
    ("pod", "pod"),
    ("reason", "reason"),
    ("capturedAt", "captured at"),
    ("thresholds", "thresholds"),
    ("usage", "observed usage"),
    ("uri", "stored at"),
    ("traceId", "trace"),
)


def trace_url(jaeger_url: str, trace_id: str) -> str:
    """The link to a trace in the Jaeger UI at `jaeger_url`."""
    return f"{jaeger_url.rstrip('/')}/trace/{trace_id}"


def render(
    summary: Mapping[str, Any],
    flames: Mapping[str, Mapping[str, Any]],
    *,
    diff: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> str:
    """The page for one capture: `summary` as `summary.summarize` returns it, `flames` as
    {type: flame.tree(...)}, `diff` as `diff.compare` returns it (or None)."""
    capture = summary.get("capture", {})
    where = "/".join(str(capture[k]) for k in ("namespace", "pod") if capture.get(k)) or "capture"
    heading = title or f"{where} — {capture.get('reason', 'profiles')}"
    kinds = [k for k in sorted(flames) if k in summary.get("profiles", {})]
    tabs = "".join(f'<button class="tab" data-kind="{html.escape(k)}">{html.escape(k)}</button>' for k in kinds)
    if diff and diff.get("types"):
        tabs += '<button class="tab" data-kind="diff">diff vs baseline</button>'
    panels = "".join(_panel(k, summary["profiles"][k]) for k in kinds)
    if diff and diff.get("types"):
        panels += _diff_panel(diff)
    errors = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in sorted(summary.get("errors", {}).items())
    )
    data = {"flames": {k: flames[k] for k in kinds}, "grown": _grown(diff)}
    # `</` would end the script element early; JSON allows the escaped form.
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return _TEMPLATE.format(
        title=html.escape(heading),
        facts=_facts(capture),
        tabs=tabs,
        panels=panels,
        errors=f'<ul class="errors">{errors}</ul>' if errors else "",
        data=payload,
        style=_STYLE,
        script=_SCRIPT,
    )


def _facts(capture: Mapping[str, Any]) -> str:
    rows = []
    for key, label in _FACTS:
        value = capture.get(key)
        if value in (None, "", {}):
            continue
        if isinstance(value, Mapping):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        shown = html.escape(str(value))
        if key == "traceId" and capture.get("traceUrl"):
            shown = f'<a href="{html.escape(str(capture["traceUrl"]))}">{shown}</a>'
        rows.append(f"<tr><th>{label}</th><td>{shown}</td></tr>")
    return f'<table class="facts">{"".join(rows)}</table>' if rows else ""


def _panel(kind: str, part: Mapping[str, Any]) -> str:
    name, view = summaries.default_view(part)
    unit = view["unit"]
    rows = "".join(
        f"<tr><td>{text.quantity(r['flat'], unit)}</td><td>{text.percent(r['flatShare'])}</td>"
        f"<td>{text.quantity(r['cum'], unit)}</td><td>{text.percent(r['cumShare'])}</td>"
        f"<td class=fn>{html.escape(r['name'])}</td></tr>"
        for r in view["topFlat"]
    )
    duration = f" over {part['durationSeconds']:g}s" if part.get("durationSeconds") else ""
    return (
        f'<section class="panel" id="panel-{html.escape(kind)}" data-kind="{html.escape(kind)}">'
        f"<h2>{html.escape(kind)} <small>{html.escape(name)}: {text.quantity(view['total'], unit)}{duration}"
        f" · {html.escape(part['file'])}</small></h2>"
        f'<div class="hint">click a frame to zoom, click the root to reset · '
        f'<input class="search" placeholder="highlight functions matching…"></div>'
        f'<svg class="flame" data-kind="{html.escape(kind)}" xmlns="http://www.w3.org/2000/svg"></svg>'
        f'<table class="top"><thead><tr><th>flat</th><th>flat%</th><th>cum</th><th>cum%</th><th>function</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _diff_panel(diff: Mapping[str, Any]) -> str:
    blocks = []
    for kind, part in diff["types"].items():
        unit, measure = part["unit"], part["measure"]
        rows = []
        for r in part["growth"]:
            if measure == "flatShare":
                before, after = text.percent(r["base"]), text.percent(r["incident"])
                delta = f"+{r['delta'] * 100:.1f} pts"
            else:
                before, after = text.quantity(r["base"], unit), text.quantity(r["incident"], unit)
                delta = "+" + text.quantity(r["delta"], unit)
            label = diff_.stack_label(r["stack"], 4).replace(" <- ", " ← ") if "stack" in r else r["name"]
            rows.append(
                f"<tr><td>{before}</td><td>{after}</td><td class=grew>{delta}</td>"
                f"<td class=fn>{html.escape(label)}</td></tr>"
            )
        what = {"flatShare": "share of the total", "stackCount": "count by stack"}.get(measure, "by function")
        blocks.append(
            f"<h3>{html.escape(kind)} <small>{html.escape(part['sampleType'])}, {what}: "
            f"{text.quantity(part['baseTotal'], unit)} → {text.quantity(part['incidentTotal'], unit)}</small></h3>"
            f'<table class="top"><thead><tr><th>baseline</th><th>incident</th><th>growth</th><th>function</th>'
            f"</tr></thead><tbody>{''.join(rows) or '<tr><td colspan=4>nothing grew</td></tr>'}</tbody></table>"
        )
    return f'<section class="panel" id="panel-diff" data-kind="diff"><h2>What grew since the baseline</h2>{"".join(blocks)}</section>'


def _grown(diff: Mapping[str, Any] | None) -> dict[str, list[str]]:
    # The flame graph outlines the functions the diff names, so growth is visible in place.
    grown: dict[str, list[str]] = {}
    for kind, part in ((diff or {}).get("types") or {}).items():
        grown[kind] = [
            (diff_.own_frames(r["stack"], 1) or [""])[0] if "stack" in r else r["name"] for r in part["growth"][:5]
        ]
    return grown


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style></head>
<body>
<header><h1>{title}</h1>{facts}</header>
<nav>{tabs}</nav>
<main>{panels}{errors}</main>
<div id="tip"></div>
<script type="application/json" id="kprof-data">{data}</script>
<script>{script}</script>
</body></html>
"""

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{padding:14px 22px 8px;background:#fff;border-bottom:1px solid #e3e6ea}
h1{font-size:19px;margin:0 0 8px}h2{font-size:16px;margin:14px 0 6px}h3{font-size:14px;margin:16px 0 4px}
small{color:#5d6675;font-weight:normal}
table.facts{border-collapse:collapse;font-size:13px}table.facts th{text-align:left;color:#5d6675;font-weight:normal;padding:1px 14px 1px 0}
nav{padding:8px 22px 0;background:#fff;border-bottom:1px solid #e3e6ea}
.tab{border:0;background:none;padding:7px 14px;font:inherit;cursor:pointer;border-bottom:3px solid transparent;color:#5d6675}
.tab.on{border-color:#e8590c;color:#1d2330;font-weight:600}
main{padding:4px 22px 22px}.panel{display:none}.panel.on{display:block}
.hint{color:#5d6675;font-size:12px;margin-bottom:4px}.search{font:inherit;font-size:12px;padding:2px 6px;width:240px;margin-left:8px}
svg.flame{width:100%;display:block;background:#fff;border:1px solid #e3e6ea;border-radius:4px}
svg.flame g.frame{cursor:pointer}svg.flame text{font:11px ui-monospace,Menlo,Consolas,monospace;fill:#1d2330;pointer-events:none}
svg.flame rect{stroke:#fff;stroke-width:.6}svg.flame g.frame:hover rect{stroke:#1d2330;stroke-width:1}
svg.flame g.grown rect{stroke:#b00020;stroke-width:1.6}svg.flame g.match rect{fill:#7048e8!important}
table.top{border-collapse:collapse;margin-top:10px;font-size:13px;background:#fff}
table.top th,table.top td{padding:3px 10px;border-bottom:1px solid #eef0f2;text-align:right}
table.top td.fn,table.top th:last-child{text-align:left;font-family:ui-monospace,Menlo,Consolas,monospace}
td.grew{color:#b00020}.errors{color:#b00020}
#tip{position:fixed;display:none;background:#1d2330;color:#fff;padding:4px 8px;border-radius:3px;font-size:12px;pointer-events:none}
"""

_SCRIPT = r"""
(function(){
const data=JSON.parse(document.getElementById('kprof-data').textContent);
const NS='http://www.w3.org/2000/svg',ROW=18;
function fmt(v,unit){const a=Math.abs(v);
 if(unit==='nanoseconds'){for(const [s,u] of [[1e9,'s'],[1e6,'ms'],[1e3,'µs']]) if(a>=s) return +(v/s).toFixed(2)+u; return v+'ns';}
 if(unit==='bytes'){for(const [s,u] of [[1<<30,'GiB'],[1<<20,'MiB'],[1<<10,'KiB']]) if(a>=s) return (v/s).toFixed(1)+u; return v+'B';}
 return String(v);}
function color(name){let h=0;for(let i=0;i<name.length;i++)h=(h*31+name.charCodeAt(i))>>>0;
 const rt=/^runtime[.\/]/.test(name);return rt?'hsl('+(190+h%30)+',45%,'+(72+h%10)+'%)':'hsl('+(h%45)+','+(70+h%20)+'%,'+(58+h%12)+'%)';}
function draw(svg,kind,focus){
 const t=data.flames[kind];if(!t)return;const names=t.names,grown=new Set(data.grown[kind]||[]);
 const width=svg.clientWidth||1200,frames=[];let depthMax=0;
 (function walk(n,x,d,path){frames.push({n:n,x:x,d:d,path:path});depthMax=Math.max(depthMax,d);let cx=x;
  for(const c of n[2]){walk(c,cx,d+1,path.concat([c]));cx+=Math.abs(c[1]);}})(t.root,0,0,[t.root]);
 const f=focus||frames[0],x0=f.x,span=Math.abs(f.n[1])||1,scale=width/span,total=Math.abs(t.root[1])||1;
 while(svg.firstChild)svg.removeChild(svg.firstChild);
 svg.setAttribute('height',(depthMax+1)*ROW+2);svg.setAttribute('viewBox','0 0 '+width+' '+((depthMax+1)*ROW+2));
 for(const fr of frames){
  const onPath=fr.d<f.d&&f.path[fr.d]===fr.n;if(fr.d<f.d&&!onPath)continue;
  let x=(fr.x-x0)*scale,w=Math.abs(fr.n[1])*scale;if(onPath){x=0;w=width;}
  if(x+w<=0||x>=width||w<0.5)continue;
  const name=names[fr.n[0]],g=document.createElementNS(NS,'g');g.setAttribute('class','frame'+(grown.has(name)?' grown':''));
  g.setAttribute('data-name',name);const r=document.createElementNS(NS,'rect');
  r.setAttribute('x',x.toFixed(1));r.setAttribute('y',fr.d*ROW);r.setAttribute('width',Math.max(w-0.5,0.5).toFixed(1));r.setAttribute('height',ROW-1);
  r.setAttribute('fill',fr.d===0?'#d0d5dc':color(name));g.appendChild(r);
  const label=name+' '+fmt(fr.n[1],t.unit)+' ('+(100*Math.abs(fr.n[1])/total).toFixed(1)+'%)';
  const tt=document.createElementNS(NS,'title');tt.textContent=label;g.appendChild(tt);
  if(w>28){const tx=document.createElementNS(NS,'text');tx.setAttribute('x',(x+4).toFixed(1));tx.setAttribute('y',fr.d*ROW+13);
   const fit=Math.floor((w-8)/6.6),s=fr.d===0?'all '+fmt(t.root[1],t.unit):name;tx.textContent=s.length>fit?s.slice(0,Math.max(fit-1,1))+'…':s;g.appendChild(tx);}
  g.addEventListener('click',()=>draw(svg,kind,fr.d===0?null:fr));
  g.addEventListener('mousemove',e=>{const tip=document.getElementById('tip');tip.textContent=label;tip.style.display='block';tip.style.left=(e.clientX+12)+'px';tip.style.top=(e.clientY+12)+'px';});
  g.addEventListener('mouseleave',()=>{document.getElementById('tip').style.display='none';});
  svg.appendChild(g);}
 const q=svg.parentNode.querySelector('.search');if(q&&q.value)mark(svg,q.value);}
function mark(svg,q){for(const g of svg.querySelectorAll('g.frame'))g.classList.toggle('match',!!q&&g.getAttribute('data-name').indexOf(q)>=0);}
const tabs=[...document.querySelectorAll('.tab')],panels=[...document.querySelectorAll('.panel')];
function show(kind){for(const b of tabs)b.classList.toggle('on',b.dataset.kind===kind);
 for(const p of panels)p.classList.toggle('on',p.dataset.kind===kind);
 const svg=document.querySelector('svg.flame[data-kind="'+kind+'"]');if(svg)draw(svg,kind,null);}
for(const b of tabs)b.addEventListener('click',()=>show(b.dataset.kind));
for(const q of document.querySelectorAll('.search'))q.addEventListener('input',()=>mark(q.closest('.panel').querySelector('svg.flame'),q.value));
// Every graph is drawn once at load (hidden ones at the page's width), so the page works without clicks.
// The tab named in the address (index.html#heap, as `kprof open --type heap` opens it), else cpu.
const want=decodeURIComponent(location.hash.slice(1));
const first=tabs.length?(tabs.find(b=>b.dataset.kind===want)||tabs.find(b=>b.dataset.kind==='cpu')||tabs[0]).dataset.kind:null;
for(const svg of document.querySelectorAll('svg.flame')){const p=svg.closest('.panel');p.classList.add('on');draw(svg,svg.dataset.kind,null);p.classList.remove('on');}
if(first)show(first);
})();
"""

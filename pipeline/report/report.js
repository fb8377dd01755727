// Draws the report's charts from the JSON block #report-data (built by pipeline/report/html.py).
// Data strings are already entity-escaped for plotly's pseudo-HTML; nothing here uses innerHTML.
(function () {
  "use strict";
  var payload = JSON.parse(document.getElementById("report-data").textContent);
  var config = { displaylogo: false, responsive: true };
  var drawn = 0;
  function draw(id, fig) {
    var el = document.getElementById(id);
    if (!el || !fig) { return; }
    Plotly.newPlot(el, fig.data, fig.layout, config);
    drawn += 1;
  }
  Object.keys(payload.figures).forEach(function (id) { draw(id, payload.figures[id]); });

  // Discussion flow: one chart, a <select> switches meetings.
  var flow = payload.flow || [];
  var base = payload.flow_layout;
  var sel = document.getElementById("flow-select");
  function flowFigure(f) {
    var traces = base.themes.map(function (name, i) {
      return { type: "scatter", mode: "markers", name: name, x: [], y: [], text: [],
               marker: { color: base.colors[i], size: 9, symbol: "line-ns-open", line: { width: 3 } },
               hovertemplate: "%{text}<extra>" + name + "</extra>" };
    });
    f.points.forEach(function (p) {
      var t = traces[p[1]], q = f.texts[p[2]];
      t.x.push(p[0]); t.y.push(base.themes[p[1]]); t.text.push(q[0] + "<br>" + q[1]);
    });
    var layout = JSON.parse(JSON.stringify(base.layout));
    layout.shapes = f.agenda.map(function (a) {
      return { type: "line", xref: "x", yref: "paper", x0: a[0], x1: a[0], y0: 0, y1: 1,
               line: { color: "#888", width: 1, dash: "dot" } };
    });
    layout.annotations = f.agenda.map(function (a, i) {
      return { x: a[0], y: 1.0 + (i % 2) * 0.06, xref: "x", yref: "paper", xanchor: "left", yanchor: "bottom",
               text: a[1], showarrow: false,
               font: { size: 10, color: "#555" }, hovertext: a[2] };
    });
    layout.xaxis.range = [-1, Math.max(f.n, 1)];
    return { data: traces.filter(function (t) { return t.x.length > 0; }), layout: layout };
  }
  function drawFlow(i) {
    if (!flow.length) { return; }
    var fig = flowFigure(flow[i]);
    Plotly.react("fig-flow", fig.data, fig.layout, config);
  }
  if (sel && flow.length) {
    flow.forEach(function (f, i) { sel.add(new Option(f.label + " (" + f.n + " 文)", String(i))); });
    sel.addEventListener("change", function () { drawFlow(Number(sel.value)); });
    drawFlow(0);
    drawn += 1;
  }
  document.documentElement.setAttribute("data-charts-drawn", String(drawn));
})();

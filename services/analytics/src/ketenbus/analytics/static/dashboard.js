// The dashboard's charts as inline SVG: no library, nothing from outside. The page's words
// and number format come from the server (labels.py), in the page's one language.
//
// Every chart has one unit on its value axis. Labels never overlap: category labels are
// measured and thinned until they fit (months are three letters: "jan", "feb"), categories
// with long names are drawn as horizontal bars, and a value label that would touch another
// label is left out (every bar still has its value in its tooltip).
(function () {
  "use strict";
  var COLORS = ["#2f6f9f", "#e08a2e", "#5a9e6f", "#8e6bb8", "#c0392b"];
  var NS = "http://www.w3.org/2000/svg";
  var PAGE = JSON.parse(document.getElementById("dashboard-words").textContent);
  var WORDS = PAGE.words, NUMBERS = PAGE.numbers;

  function t(key, values) {
    var s = WORDS[key];
    if (s == null) throw new Error("no words for " + key);
    return s.replace(/\{(\w+)\}/g, function (_, name) { return values[name]; });
  }
  // A dimension's value in words ("referrer_type", "gp" -> "huisarts"); unknown keys as they are.
  function valueLabel(dimension, key) {
    var s = WORDS[dimension + "." + key];
    return s == null ? String(key) : s;
  }
  function periodLabel(period, short) {
    var m = /^(\d{4})-(\d{2})$/.exec(period);
    if (m) return t("month." + Number(m[2]));
    var q = /^(\d{4})-Q(\d)$/.exec(period);
    if (q) return t(short ? "period.quarter_short" : "period.quarter", {q: q[2], year: q[1]});
    return String(period);
  }

  // Numbers the page's way: 1.234,5 and € 39.180 in Dutch; 1,234.5 and €39,180 in English.
  function grouped(v, decimals) {
    var s = Math.abs(v).toFixed(decimals), parts = s.split(".");
    var whole = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, NUMBERS.thousands);
    return (v < 0 && Number(s) !== 0 ? "-" : "") + whole + (parts[1] ? NUMBERS.decimal + parts[1] : "");
  }
  function num(v, d) {
    if (v == null) return "–";
    var s = grouped(v, d == null ? 1 : d);
    if (s.indexOf(NUMBERS.decimal) >= 0) s = s.replace(/0+$/, "");  // 12,50 -> 12,5; 12,0 -> 12
    if (s.slice(-1) === NUMBERS.decimal) s = s.slice(0, -1);
    return s;
  }
  function pct(v) { return v == null ? "–" : NUMBERS.percent.replace("{n}", num(v * 100, 1)); }
  function euro(v) { return v == null ? "–" : NUMBERS.euro.replace("{n}", grouped(Math.round(v), 0)); }
  function int(v) { return num(v, 0); }
  var FORMATS = {pct: pct, num: num, int: int, euro: euro};

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }
  function text(parent, x, y, s, attrs) {
    var node = el("text", Object.assign({x: x, y: y, "font-size": 11, fill: "#52606d"}, attrs || {}), parent);
    node.textContent = s;
    return node;
  }

  // Where each label of a chart went, in the chart's own units: a label that would touch one
  // already placed is taken out again.
  function Placement() { this.boxes = []; }
  Placement.prototype.fits = function (node) {
    var b = node.getBBox();
    var clash = this.boxes.some(function (o) {
      return b.x < o.x + o.width + 1 && o.x < b.x + b.width + 1 && b.y < o.y + o.height && o.y < b.y + b.height;
    });
    return !clash;
  };
  Placement.prototype.place = function (node) {
    if (!this.fits(node)) { node.remove(); return false; }
    this.boxes.push(node.getBBox());
    return true;
  };

  // Ticks at round values (1, 2, 2.5 or 5 x a power of ten) covering min..max.
  function niceTicks(min, max, count) {
    if (max === min) max = min + 1;
    var raw = (max - min) / count, power = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (f) { return f * power; }).filter(function (s) { return s >= raw; })[0];
    var ticks = [];
    for (var v = Math.floor(min / step) * step; v < max + step * 0.999; v += step) ticks.push(Math.round(v / step) * step);
    if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
    return ticks;
  }

  function figure(parent, id, title, spec) {
    var fig = document.createElement("figure");
    fig.className = "chart";
    fig.dataset.chart = id;
    fig.dataset.unit = spec.unit;
    var cap = document.createElement("figcaption");
    cap.textContent = title;
    fig.appendChild(cap);
    parent.appendChild(fig);
    return fig;
  }
  function legend(fig, series) {
    if (series.length < 2) return;
    var box = document.createElement("div");
    box.className = "legend";
    series.forEach(function (s, j) {
      var i = document.createElement("i");
      i.style.background = s.color || COLORS[j % COLORS.length];
      if (s.line) i.className = "line";
      box.appendChild(i);
      box.appendChild(document.createTextNode(s.name));
    });
    fig.appendChild(box);
  }
  function note(fig, s) {
    if (!s) return;
    var p = document.createElement("p");
    p.className = "note";
    p.textContent = s;
    fig.appendChild(p);
  }
  function count(series) {
    var n = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v != null) n += 1; }); });
    return n;
  }
  function mark(node, s, category, v, fmt) {
    node.setAttribute("class", "mark");
    node.setAttribute("data-value", v);
    node.setAttribute("data-series", s.name);
    node.setAttribute("data-category", category);
    el("title", {}, node).textContent = s.name + ", " + category + ": " + fmt(v);
  }

  // Vertical bars over time (months, quarters, years): grouped per category, one bar per
  // series; a series with `line: true` is drawn as a line with points over the bars.
  function columns(parent, id, title, spec) {
    var fig = figure(parent, id, title, spec);
    fig.dataset.expected = count(spec.series);
    var W = 460, H = 240, right = 10, top = 26, bottom = 24;
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title}, fig);
    var placed = new Placement();
    var fmt = FORMATS[spec.format || "num"];
    var values = [];
    spec.series.forEach(function (s) { s.values.forEach(function (v) { if (v != null) values.push(v); }); });
    var ticks = niceTicks(Math.min.apply(null, values.concat([0])), Math.max.apply(null, values.concat([0])), 4);
    var min = ticks[0], max = ticks[ticks.length - 1];
    var plotH = H - top - bottom;
    function y(v) { return top + (max - v) / (max - min) * plotH; }
    var tickNodes = ticks.map(function (tick) { return text(svg, 0, y(tick) + 4, fmt(tick), {"text-anchor": "end", "class": "tick"}); });
    var left = Math.ceil(Math.max.apply(null, tickNodes.map(function (n) { return n.getComputedTextLength(); }))) + 10;
    tickNodes.forEach(function (n) { n.setAttribute("x", left - 5); placed.place(n); });
    ticks.forEach(function (tick) {
      el("line", {x1: left, x2: W - right, y1: y(tick), y2: y(tick), stroke: tick === 0 ? "#9aa5b1" : "#eef2f6"}, svg);
    });
    placed.place(text(svg, 2, 12, t(spec.unit), {"class": "unit", "font-weight": 600}));
    var plotW = W - left - right, n = Math.max(spec.categories.length, 1);
    var groupW = plotW / n;
    var bars = spec.series.filter(function (s) { return !s.line; });
    var barW = Math.max(Math.min((groupW - 6) / Math.max(bars.length, 1), 38), 2);
    function centre(i) { return left + i * groupW + groupW / 2; }
    var drawn = 0, showValues = spec.values !== false && n * spec.series.length <= 16;
    var valueLabels = [];
    spec.categories.forEach(function (category, i) {
      var x0 = centre(i) - barW * bars.length / 2;
      bars.forEach(function (s, j) {
        var v = s.values[i];
        if (v == null) return;
        var r = el("rect", {
          x: x0 + j * barW, width: Math.max(barW - 1, 1),
          y: Math.min(y(v), y(0)), height: Math.max(Math.abs(y(v) - y(0)), 1),
          fill: v < 0 ? "#c0392b" : (s.color || COLORS[spec.series.indexOf(s) % COLORS.length])
        }, svg);
        mark(r, s, category.label, v, fmt);
        if (showValues) valueLabels.push([x0 + j * barW + barW / 2, v < 0 ? y(v) + 11 : y(v) - 3, fmt(v)]);
        drawn += 1;
      });
    });
    spec.series.filter(function (s) { return s.line; }).forEach(function (s) {
      var color = s.color || COLORS[spec.series.indexOf(s) % COLORS.length];
      var points = [];
      spec.categories.forEach(function (category, i) {
        if (s.values[i] != null) points.push([centre(i), y(s.values[i])]);
      });
      el("polyline", {points: points.map(function (p) { return p.join(","); }).join(" "), fill: "none", stroke: color, "stroke-width": 2}, svg);
      spec.categories.forEach(function (category, i) {
        var v = s.values[i];
        if (v == null) return;
        mark(el("circle", {cx: centre(i), cy: y(v), r: 3.5, fill: color}, svg), s, category.label, v, fmt);
        drawn += 1;
      });
    });
    // Category labels: measured, then every k-th shown so that neighbours keep a gap.
    var labels = spec.categories.map(function (c, i) {
      return text(svg, centre(i), H - bottom + 15, c.label, {"text-anchor": "middle", "class": "tick"});
    });
    var widest = Math.max.apply(null, labels.map(function (n) { return n.getComputedTextLength(); }).concat([0]));
    var every = Math.max(1, Math.ceil((widest + 6) / groupW));
    labels.forEach(function (node, i) {
      if (i % every !== 0) node.remove(); else placed.place(node);
    });
    if (spec.marker) {
      var i = spec.marker.index, x = centre(i);
      el("line", {x1: x, x2: x, y1: top - 4, y2: H - bottom, stroke: "#243b53", "stroke-dasharray": "4 3", "class": "marker"}, svg);
      var flag = text(svg, x, top - 8, spec.marker.label, {"text-anchor": "middle", "class": "marker-label", fill: "#243b53", "font-weight": 600});
      if (!placed.fits(flag)) { flag.setAttribute("text-anchor", "start"); flag.setAttribute("x", x + 4); }
      placed.place(flag);
      if (labels[i] && labels[i].parentNode) labels[i].setAttribute("font-weight", 700);
    }
    valueLabels.forEach(function (v) {
      placed.place(text(svg, v[0], v[1], v[2], {"text-anchor": "middle", "font-size": 9, "class": "value"}));
    });
    legend(fig, spec.series);
    note(fig, spec.note);
    fig.dataset.drawn = drawn;
    return fig;
  }

  // Horizontal bars for categories with names (who referred, topics, organisations): each
  // name has a line of its own, so names never run into each other.
  function rows(parent, id, title, spec) {
    var fig = figure(parent, id, title, spec);
    fig.dataset.expected = count(spec.series);
    var W = 460, right = 44, top = 22, bottom = 22;
    var rowH = Math.max(20, 12 * spec.series.length + 8);
    var H = top + rowH * Math.max(spec.categories.length, 1) + bottom;
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title}, fig);
    var placed = new Placement();
    var fmt = FORMATS[spec.format || "int"];
    var names = spec.categories.map(function (c, i) {
      return text(svg, 0, top + i * rowH + rowH / 2 + 4, c.label, {"text-anchor": "end", "class": "tick"});
    });
    var widest = Math.max.apply(null, names.map(function (n) { return n.getComputedTextLength(); }).concat([0]));
    var left = Math.min(Math.ceil(widest) + 10, W * 0.45);
    names.forEach(function (node) {
      var s = node.textContent;
      while (node.getComputedTextLength() > left - 10 && s.length > 4) { s = s.slice(0, -2); node.textContent = s + "…"; }
      node.setAttribute("x", left - 6);
      placed.place(node);
    });
    var values = [];
    spec.series.forEach(function (s) { s.values.forEach(function (v) { if (v != null) values.push(v); }); });
    var ticks = niceTicks(0, Math.max.apply(null, values.concat([0])), 4);
    var max = ticks[ticks.length - 1], plotW = W - left - right;
    function x(v) { return left + v / max * plotW; }
    var tickNodes = ticks.map(function (tick) {
      el("line", {x1: x(tick), x2: x(tick), y1: top, y2: H - bottom, stroke: tick === 0 ? "#9aa5b1" : "#eef2f6"}, svg);
      return text(svg, x(tick), H - bottom + 14, fmt(tick), {"text-anchor": "middle", "class": "tick"});
    });
    var tickW = Math.max.apply(null, tickNodes.map(function (n) { return n.getComputedTextLength(); }));
    var every = Math.max(1, Math.ceil((tickW + 6) / (plotW / (ticks.length - 1))));
    tickNodes.forEach(function (node, i) { if (i % every !== 0) node.remove(); else placed.place(node); });
    placed.place(text(svg, W - 2, 12, t(spec.unit), {"class": "unit", "font-weight": 600, "text-anchor": "end"}));
    var barH = (rowH - 6) / spec.series.length, drawn = 0;
    spec.categories.forEach(function (category, i) {
      spec.series.forEach(function (s, j) {
        var v = s.values[i];
        if (v == null) return;
        var y0 = top + i * rowH + 3 + j * barH;
        var r = el("rect", {x: left, y: y0, width: Math.max(x(v) - left, 1), height: Math.max(barH - 1, 1),
          fill: s.color || COLORS[j % COLORS.length]}, svg);
        mark(r, s, category.label, v, fmt);
        placed.place(text(svg, x(v) + 4, y0 + barH / 2 + 3, fmt(v), {"font-size": 9, "class": "value"}));
        drawn += 1;
      });
    });
    legend(fig, spec.series);
    note(fig, spec.note);
    fig.dataset.drawn = drawn;
    return fig;
  }

  function column(rows_, name) { return rows_.map(function (r) { return r[name]; }); }
  function perCase(rows_, minutesName) {
    return rows_.map(function (r) { return r.closed_cases ? r[minutesName] / r.closed_cases / 60 : null; });
  }
  function periods(rows_) { return rows_.map(function (r) { return {key: r.period, label: periodLabel(r.period, true)}; }); }
  function keyed(dimension, counts) {
    return Object.keys(counts).map(function (k) { return {key: k, label: valueLabel(dimension, k)}; });
  }
  function escape(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c]; });
  }

  function tile(key, value) {
    return '<div class="tile"><b>' + escape(value) + "</b><span>" + escape(t(key)) + "</span></div>";
  }

  // The sector's table: (figure, how it is shown); the words are the figures' labels.
  var TABLE = [
    ["closed_cases", "int"], ["time_per_case", "raw"], ["registration_time_per_case", "raw"],
    ["dossier_time_per_case", "raw"], ["lead_time_days", "num"], ["chats_per_case", "num"],
    ["dossier_messages_per_case", "num"], ["homework_contacts_per_case", "num"],
    ["online_dossier_adoption", "pct"], ["no_show_rate_intake", "pct"], ["no_show_rate_follow_up", "pct"],
    ["module_completion_rate", "pct"], ["module_drop_out_rate", "pct"], ["waiting_time_days", "num"],
    ["response_time_hours", "num"], ["answered_within_working_day_share", "pct"],
    ["online_share_of_contacts", "pct"], ["online_share_of_time", "pct"]
  ];

  function sectorTable(rows_) {
    var head = "<tr><th>" + escape(t("page.figure")) + "</th>" + rows_.map(function (r) {
      return "<th>" + escape(periodLabel(r.period, false)) + "</th>";
    }).join("") + "</tr>";
    var body = TABLE.map(function (f) {
      return "<tr><td>" + escape(t(f[0])) + "</td>" + rows_.map(function (r) {
        var v = r[f[0]];
        return "<td>" + escape(f[1] === "raw" ? (v == null ? "–" : v) : FORMATS[f[1]](v)) + "</td>";
      }).join("") + "</tr>";
    }).join("");
    return "<table id=\"sector-table\">" + head + body + "</table>";
  }

  // The sector's own table (sector.py): a row per location x work type, "of which" rows
  // indented under their work type, the total last; two column groups.
  var SECTOR_WITH = ["with_closed_cases", "with_registration_time", "with_dossier_time", "with_total_time",
    "with_time_per_case", "with_lead_time_days", "with_chats", "with_messages", "with_homework_contacts"];
  var SECTOR_WITHOUT = ["without_closed_cases", "without_registration_time", "without_time_per_case",
    "without_lead_time_days"];

  function sectorForm(rows_, year) {
    var section = document.getElementById("sector-form");
    var html = "<h2>" + escape(t("sector.heading", {period: year || "–"})) + "</h2><p class=\"note\">" +
      escape(t("sector.note")) + "</p>";
    if (!rows_.length) {
      section.innerHTML = html + "<p class=\"note\">" + escape(t("page.no_data")) + "</p>";
      return;
    }
    function heading(key) { return t(key).split(": ").slice(1).join(": "); }
    function cell(v) { return "<td>" + escape(v == null ? "–" : (typeof v === "number" ? int(v) : v)) + "</td>"; }
    html += "<table id=\"sector-form-table\"><tr><th></th><th colspan=\"" + SECTOR_WITH.length + "\">" +
      escape(t("sector.with")) + "</th><th colspan=\"" + SECTOR_WITHOUT.length + "\">" + escape(t("sector.without")) +
      "</th></tr><tr><th>" + escape(t("sector.row")) + "</th>" +
      SECTOR_WITH.concat(SECTOR_WITHOUT).map(function (k) { return "<th>" + escape(heading(k)) + "</th>"; }).join("") + "</tr>";
    rows_.forEach(function (r) {
      var name = r.location === "total" ? t("value.total") :
        r.of_which !== "all" ? valueLabel("of_which", r.of_which) : r.location + ", " + valueLabel("work_type", r.work_type);
      var kind = r.location === "total" ? "total" : r.of_which !== "all" ? "of-which" : "row";
      html += "<tr class=\"" + kind + "\"><td>" + escape(name) + "</td>" +
        SECTOR_WITH.concat(SECTOR_WITHOUT).map(function (k) { return cell(r[k]); }).join("") + "</tr>";
    });
    section.innerHTML = html + "</table>";
  }

  function render(data) {
    document.getElementById("login").style.display = "none";
    document.getElementById("org").textContent = data.organisation + (data.year ? " — " + data.year : "");
    var year = data.years.filter(function (r) { return r.period === data.year; })[0] || {};
    var during = data.year ? ", " + data.year : "";
    document.getElementById("tiles").innerHTML = [
      tile("closed_cases", int(year.closed_cases)),
      tile("time_per_case", year.time_per_case || "–"),
      tile("lead_time_days", num(year.lead_time_days)),
      tile("no_show_rate_intake", pct(year.no_show_rate_intake)),
      tile("no_show_rate_follow_up", pct(year.no_show_rate_follow_up)),
      tile("module_completion_rate", pct(year.module_completion_rate)),
      tile("online_dossier_adoption", pct(year.online_dossier_adoption)),
      tile("waiting_time_days", num(year.waiting_time_days))
    ].join("");
    var quarters = data.quarters.filter(function (r) { return !data.year || r.period.indexOf(data.year) === 0; });
    var months = data.months.filter(function (r) { return !data.year || r.period.indexOf(data.year) === 0; });
    sectorForm(data.sector_table || [], data.year);
    document.getElementById("table").innerHTML = sectorTable(quarters.concat(data.year ? [year] : []));
    var charts = document.getElementById("charts");
    charts.innerHTML = "";
    var q = periods(quarters), m = periods(months);
    columns(charts, "closed-cases", t("chart.closed_cases") + during, {
      categories: m, series: [{name: t("closed_cases"), values: column(months, "closed_cases")}], format: "int", unit: "unit.cases"});
    columns(charts, "time-per-case", t("chart.time_per_case") + during, {
      categories: q, series: [
        {name: t("series.registration"), values: perCase(quarters, "registration_minutes")},
        {name: t("series.online_dossier"), values: perCase(quarters, "dossier_minutes")}], format: "num", unit: "unit.hours"});
    columns(charts, "no-show", t("chart.no_show") + during, {
      categories: m, series: [
        {name: t("series.intake"), values: column(months, "no_show_rate_intake")},
        {name: t("series.follow_up"), values: column(months, "no_show_rate_follow_up")}], format: "pct", unit: "unit.percent"});
    columns(charts, "modules", t("chart.modules") + during, {
      categories: q, series: [
        {name: t("series.completed"), values: column(quarters, "module_completion_rate")},
        {name: t("series.dropped_out"), values: column(quarters, "module_drop_out_rate")}], format: "pct", unit: "unit.percent"});
    columns(charts, "online-share", t("chart.online_share") + during, {
      categories: q, series: [
        {name: t("series.of_contacts"), values: column(quarters, "online_share_of_contacts")},
        {name: t("series.of_time"), values: column(quarters, "online_share_of_time")}], format: "pct", unit: "unit.percent"});
    // Hours and days are two units: two charts, each with its own axis.
    var modes = [{key: "blended", label: t("series.blended")}, {key: "face_to_face", label: t("series.face_to_face")}];
    columns(charts, "blended-hours", t("chart.blended_hours") + during, {
      categories: modes, series: [{name: t("unit.hours"), values: [year.blended_hours_per_case, year.face_to_face_hours_per_case]}],
      format: "num", unit: "unit.hours"});
    columns(charts, "blended-lead-time", t("chart.blended_lead_time") + during, {
      categories: modes, series: [{name: t("unit.days"), values: [year.blended_lead_time_days, year.face_to_face_lead_time_days]}],
      format: "num", unit: "unit.days", note: t("chart.blended_note")});
    columns(charts, "waiting", t("chart.waiting") + during, {
      categories: m, series: [{name: t("unit.days"), values: column(months, "waiting_time_days")}], format: "num", unit: "unit.days"});
    columns(charts, "response", t("chart.response") + during, {
      categories: q, series: [{name: t("unit.hours"), values: column(quarters, "response_time_hours")}], format: "num",
      unit: "unit.hours", note: t("chart.response_note")});
    rows(charts, "sources", t("chart.sources") + during, {
      categories: keyed("referrer_type", data.referral_sources),
      series: [{name: t("unit.referrals"), values: Object.values(data.referral_sources)}], unit: "unit.referrals"});
    rows(charts, "topics", t("chart.topics") + during, {
      categories: keyed("topic", data.topics),
      series: [{name: t("unit.referrals"), values: Object.values(data.topics)}], unit: "unit.referrals"});
    rows(charts, "areas", t("chart.areas") + during, {
      categories: keyed("postcode_area", data.postcode_areas),
      series: [{name: t("unit.referrals"), values: Object.values(data.postcode_areas)}], unit: "unit.referrals"});
    var bench = document.getElementById("benchmark");
    if (data.benchmark && data.benchmark.organisations.length) {
      var orgs = data.benchmark.organisations, period = ", " + periodLabel(data.benchmark.period, false);
      var names = orgs.map(function (o) {
        return {key: o.organisation, label: o.own ? t("bench.you", {name: o.organisation}) : o.organisation};
      });
      var cells = data.benchmark.figures.map(function (k) {
        return "<tr><td>" + escape(t(k)) + "</td>" + orgs.map(function (o) {
          var v = o.figures[k];
          return "<td>" + escape(k.indexOf("rate") >= 0 || k.indexOf("share") >= 0 ? pct(v) : num(v)) + "</td>";
        }).join("") + "</tr>";
      }).join("");
      bench.innerHTML = "<h2>" + escape(t("bench.heading")) + "</h2><p class=\"note\">" + escape(t("bench.note")) + "</p>" +
        "<table><tr><th>" + escape(t("page.figure")) + "</th>" +
        names.map(function (n) { return "<th>" + escape(n.label) + "</th>"; }).join("") + "</tr>" + cells + "</table>";
      var g = document.createElement("div");
      g.className = "grid";
      bench.appendChild(g);
      rows(g, "benchmark-lead-time", t("chart.benchmark_lead_time") + period, {
        categories: names, series: [{name: t("unit.days"), values: orgs.map(function (o) { return o.figures.lead_time_days; })}],
        format: "num", unit: "unit.days"});
      rows(g, "benchmark-no-show", t("chart.benchmark_no_show") + period, {
        categories: names, series: [
          {name: t("series.intake"), values: orgs.map(function (o) { return o.figures.no_show_rate_intake; })},
          {name: t("series.follow_up"), values: orgs.map(function (o) { return o.figures.no_show_rate_follow_up; })}],
        format: "pct", unit: "unit.percent"});
    } else {
      bench.innerHTML = "<h2>" + escape(t("bench.heading")) + "</h2><p class=\"note\">" + escape(t("bench.none")) + "</p>";
    }
    businessCase(data.business_case);
    document.body.dataset.rendered = "yes";
  }

  function businessCase(bc) {
    var rate = euro(bc.assumptions.hourly_rate);
    var source = bc.hours_source === "measured" ? t("bc.measured", {period: bc.measured.period, rate: rate}) : t("bc.assumed", {rate: rate});
    var verdict = bc.break_even_year ? t("bc.break_even", {year: bc.break_even_year}) : t("bc.no_break_even", {years: bc.years.length});
    var section = document.getElementById("business");
    section.innerHTML = "<h2>" + escape(t("bc.heading")) + "</h2><p class=\"note\">" + escape(source) + " <b>" + escape(verdict) + "</b></p>";
    var g = document.createElement("div");
    g.className = "grid";
    section.appendChild(g);
    var years = bc.years.map(function (y) { return {key: y.year, label: t("period.year_number", {year: y.year})}; });
    var breakEven = bc.years.map(function (y) { return y.year; }).indexOf(bc.break_even_year);
    var fig = columns(g, "business-case", t("chart.business_case"), {
      categories: years, series: [
        {name: t("series.savings"), values: bc.years.map(function (y) { return y.savings; }), color: "#5a9e6f"},
        {name: t("series.costs"), values: bc.years.map(function (y) { return y.costs; }), color: "#e08a2e"},
        {name: t("series.cumulative"), values: bc.years.map(function (y) { return y.cumulative_balance; }), color: "#2f6f9f", line: true}],
      format: "euro", unit: "unit.euro", values: false,
      marker: breakEven >= 0 ? {index: breakEven, label: t("bc.break_even_mark")} : null});
    var table = "<table class=\"business-years\"><tr><th></th>" + years.map(function (y) { return "<th>" + escape(y.label) + "</th>"; }).join("") + "</tr>" +
      [["series.savings", "savings"], ["series.costs", "costs"], ["series.cumulative", "cumulative_balance"]].map(function (r) {
        return "<tr><td>" + escape(t(r[0])) + "</td>" + bc.years.map(function (y) { return "<td>" + escape(euro(y[r[1]])) + "</td>"; }).join("") + "</tr>";
      }).join("") + "</table>";
    fig.insertAdjacentHTML("beforeend", table);
  }

  function problem(message) {
    document.getElementById("problem").textContent = message;
    document.getElementById("login").style.display = "block";
  }

  function load(key) {
    fetch("/v1/dashboard-data", {headers: {Authorization: "Bearer " + key}})
      .then(function (r) {
        if (r.status === 401 || r.status === 403) throw new Error(t("page.key_invalid"));
        if (!r.ok) throw new Error(t("page.load_failed", {status: r.status}));
        return r.json();
      })
      .then(function (data) { sessionStorage.setItem("ketenbus-key", key); render(data); })
      .catch(function (e) { problem(e.message); });
  }

  var embedded = document.getElementById("dashboard-data");
  if (embedded) {
    // A report file: its language was chosen when it was written.
    document.getElementById("other-language").remove();
    render(JSON.parse(embedded.textContent));
    return;
  }
  var match = /[#&]key=([^&]+)/.exec(location.hash);
  if (match) { history.replaceState(null, "", location.pathname + location.search); }
  var key = match ? decodeURIComponent(match[1]) : sessionStorage.getItem("ketenbus-key");
  document.getElementById("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    load(document.getElementById("key").value.trim());
  });
  if (key) load(key); else problem("");
})();

// The dashboard's charts: grouped bars as inline SVG, no library, nothing from outside.
(function () {
  "use strict";
  var COLORS = ["#2f6f9f", "#e08a2e", "#5a9e6f", "#8e6bb8", "#c0392b"];
  var NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }
  function text(parent, x, y, s, attrs) {
    var t = el("text", Object.assign({x: x, y: y, "font-size": 11, fill: "#52606d"}, attrs || {}), parent);
    t.textContent = s;
    return t;
  }
  function pct(v) { return v == null ? "–" : (v * 100).toFixed(1).replace(/\.0$/, "") + " %"; }
  function num(v, d) { return v == null ? "–" : Number(v).toFixed(d == null ? 1 : d).replace(/\.0+$/, ""); }
  function euro(v) { return v == null ? "–" : "€ " + Math.round(v).toLocaleString("nl-NL"); }
  var FORMATS = {pct: pct, num: num, int: function (v) { return num(v, 0); }, euro: euro};

  // Grouped bars: one group per category, one bar per series. Nulls draw nothing.
  function bars(id, title, spec) {
    var fig = document.createElement("figure");
    fig.className = "chart";
    fig.dataset.chart = id;
    var cap = document.createElement("figcaption");
    cap.textContent = title;
    fig.appendChild(cap);
    var values = [];
    spec.series.forEach(function (s) { s.values.forEach(function (v) { if (v != null) values.push(v); }); });
    fig.dataset.expected = values.length;
    var W = 460, H = 230, left = 54, right = 10, top = 16, bottom = 52;
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title}, fig);
    var max = Math.max.apply(null, values.concat([0])), min = Math.min.apply(null, values.concat([0]));
    if (max === min) max = min + 1;
    var plotH = H - top - bottom, plotW = W - left - right;
    function y(v) { return top + (max - v) / (max - min) * plotH; }
    var fmt = FORMATS[spec.format || "num"];
    [min, (min + max) / 2, max].forEach(function (tick) {
      el("line", {x1: left, x2: W - right, y1: y(tick), y2: y(tick), stroke: "#eef2f6"}, svg);
      text(svg, left - 4, y(tick) + 4, fmt(tick), {"text-anchor": "end"});
    });
    el("line", {x1: left, x2: W - right, y1: y(0), y2: y(0), stroke: "#9aa5b1"}, svg);
    var groupW = plotW / Math.max(spec.categories.length, 1);
    var barW = Math.max(Math.min((groupW - 6) / spec.series.length, 38), 2);
    var drawn = 0;
    spec.categories.forEach(function (category, i) {
      var x0 = left + i * groupW + (groupW - barW * spec.series.length) / 2;
      spec.series.forEach(function (s, j) {
        var v = s.values[i];
        if (v == null) return;
        var r = el("rect", {
          "class": "mark", x: x0 + j * barW, width: Math.max(barW - 1, 1),
          y: Math.min(y(v), y(0)), height: Math.max(Math.abs(y(v) - y(0)), 1),
          fill: v < 0 ? "#c0392b" : (s.color || COLORS[j % COLORS.length]),
          "data-value": v, "data-series": s.name, "data-category": category
        }, svg);
        el("title", {}, r).textContent = s.name + ", " + category + ": " + fmt(v);
        if (spec.categories.length * spec.series.length <= 16) {
          text(svg, x0 + j * barW + barW / 2, (v < 0 ? y(v) + 11 : y(v) - 3), fmt(v), {"text-anchor": "middle", "font-size": 9});
        }
        drawn += 1;
      });
      var label = String(category);
      var every = Math.ceil(spec.categories.length / 12);
      if (i % every === 0) {
        text(svg, left + i * groupW + groupW / 2, H - bottom + 14, label.length > 14 ? label.slice(0, 13) + "…" : label, {"text-anchor": "middle"});
      }
    });
    if (spec.series.length > 1) {
      var legend = document.createElement("div");
      legend.className = "legend";
      spec.series.forEach(function (s, j) {
        var i = document.createElement("i");
        i.style.background = s.color || COLORS[j % COLORS.length];
        legend.appendChild(i);
        legend.appendChild(document.createTextNode(s.name));
      });
      fig.appendChild(legend);
    }
    if (spec.note) {
      var p = document.createElement("p");
      p.className = "note";
      p.textContent = spec.note;
      fig.appendChild(p);
    }
    fig.dataset.drawn = drawn;
    return fig;
  }

  function column(rows, name) { return rows.map(function (r) { return r[name]; }); }
  function hours(rows, name) { return rows.map(function (r) { return r[name] == null ? null : r[name] / 60; }); }
  function perCase(rows, minutesName) {
    return rows.map(function (r) { return r.closed_cases ? r[minutesName] / r.closed_cases / 60 : null; });
  }

  function tile(label, value) {
    return '<div class="tile"><b>' + value + "</b><span>" + label + "</span></div>";
  }

  var TABLE = [
    ["closed_cases", "Closed cases", "int"],
    ["time_per_case", "Time per case (h:mm)", "raw"],
    ["registration_time_per_case", "of which registration", "raw"],
    ["dossier_time_per_case", "of which online dossier", "raw"],
    ["lead_time_days", "Lead time (doorlooptijd, days)", "num"],
    ["chats_per_case", "Chats per case", "num"],
    ["dossier_messages_per_case", "Dossier messages per case", "num"],
    ["homework_contacts_per_case", "Homework contacts per case", "num"],
    ["online_dossier_adoption", "Online dossier adoption", "pct"],
    ["no_show_rate_intake", "No-show intake", "pct"],
    ["no_show_rate_follow_up", "No-show follow-up", "pct"],
    ["module_completion_rate", "Module completion", "pct"],
    ["module_drop_out_rate", "Module drop-out", "pct"],
    ["waiting_time_days", "Waiting time (days)", "num"],
    ["response_time_hours", "Response to messages (hours)", "num"],
    ["answered_within_working_day_share", "Answered within 1 working day", "pct"],
    ["online_share_of_contacts", "Online share of contacts", "pct"],
    ["online_share_of_time", "Online share of time", "pct"]
  ];

  function sectorTable(rows) {
    var head = "<tr><th>Figure</th>" + rows.map(function (r) { return "<th>" + r.period + "</th>"; }).join("") + "</tr>";
    var body = TABLE.map(function (f) {
      return "<tr><td>" + f[1] + "</td>" + rows.map(function (r) {
        var v = r[f[0]];
        return "<td>" + (f[2] === "raw" ? (v == null ? "–" : v) : FORMATS[f[2]](v)) + "</td>";
      }).join("") + "</tr>";
    }).join("");
    return "<table id=\"sector-table\">" + head + body + "</table>";
  }

  function render(data) {
    document.getElementById("login").style.display = "none";
    document.getElementById("org").textContent = data.organisation + (data.year ? " — " + data.year : "");
    var year = data.years.filter(function (r) { return r.period === data.year; })[0] || {};
    document.getElementById("tiles").innerHTML = [
      tile("closed cases", year.closed_cases == null ? "–" : year.closed_cases),
      tile("time per case (h:mm)", year.time_per_case || "–"),
      tile("lead time, days", num(year.lead_time_days)),
      tile("no-show at intake", pct(year.no_show_rate_intake)),
      tile("no-show at follow-up", pct(year.no_show_rate_follow_up)),
      tile("modules completed", pct(year.module_completion_rate)),
      tile("online dossier used", pct(year.online_dossier_adoption)),
      tile("waiting time, days", num(year.waiting_time_days))
    ].join("");
    var quarters = data.quarters.filter(function (r) { return !data.year || r.period.indexOf(data.year) === 0; });
    var months = data.months.filter(function (r) { return !data.year || r.period.indexOf(data.year) === 0; });
    document.getElementById("table").innerHTML = sectorTable(quarters.concat(data.year ? [year] : []));
    var charts = document.getElementById("charts");
    charts.innerHTML = "";
    var q = column(quarters, "period"), m = column(months, "period");
    charts.appendChild(bars("closed-cases", "Closed cases per month", {
      categories: m, series: [{name: "closed cases", values: column(months, "closed_cases")}], format: "int"}));
    charts.appendChild(bars("time-per-case", "Hours per closed case: registration and online dossier", {
      categories: q, series: [
        {name: "registration", values: perCase(quarters, "registration_minutes")},
        {name: "online dossier", values: perCase(quarters, "dossier_minutes")}], format: "num"}));
    charts.appendChild(bars("no-show", "No-show rate per month", {
      categories: m, series: [
        {name: "intake", values: column(months, "no_show_rate_intake")},
        {name: "follow-up", values: column(months, "no_show_rate_follow_up")}], format: "pct"}));
    charts.appendChild(bars("modules", "Self-help modules started per quarter: completed and dropped out", {
      categories: q, series: [
        {name: "completed", values: column(quarters, "module_completion_rate")},
        {name: "dropped out after step 1", values: column(quarters, "module_drop_out_rate")}], format: "pct"}));
    charts.appendChild(bars("online-share", "Online share of contacts and of time", {
      categories: q, series: [
        {name: "of contacts", values: column(quarters, "online_share_of_contacts")},
        {name: "of time", values: column(quarters, "online_share_of_time")}], format: "pct"}));
    charts.appendChild(bars("blended", "Blended against face-to-face only (" + (data.year || "") + ")", {
      categories: ["hours per case", "lead time (days)"], series: [
        {name: "blended", values: [year.blended_hours_per_case, year.blended_lead_time_days]},
        {name: "face-to-face only", values: [year.face_to_face_hours_per_case, year.face_to_face_lead_time_days]}],
      format: "num", note: "When online contact is added on top of face-to-face contact instead of replacing it, blended cases take more hours and more days."}));
    charts.appendChild(bars("waiting", "Waiting time to first contact (days) per month", {
      categories: m, series: [{name: "days", values: column(months, "waiting_time_days")}], format: "num"}));
    charts.appendChild(bars("response", "Response to clients' messages (hours) per quarter", {
      categories: q, series: [{name: "hours", values: column(quarters, "response_time_hours")}], format: "num",
      note: "Targets in the sector's reports: within one working day, within 48 hours."}));
    charts.appendChild(bars("sources", "Who referred (" + (data.year || "") + ")", {
      categories: Object.keys(data.referral_sources),
      series: [{name: "referrals", values: Object.values(data.referral_sources)}], format: "int"}));
    charts.appendChild(bars("topics", "What referrals were about", {
      categories: Object.keys(data.topics),
      series: [{name: "referrals", values: Object.values(data.topics)}], format: "int"}));
    charts.appendChild(bars("areas", "Referrals per postcode area", {
      categories: Object.keys(data.postcode_areas),
      series: [{name: "referrals", values: Object.values(data.postcode_areas)}], format: "int"}));
    var bench = document.getElementById("benchmark");
    if (data.benchmark && data.benchmark.organisations.length) {
      var orgs = data.benchmark.organisations;
      var names = orgs.map(function (o) { return o.organisation + (o.own ? " (you)" : ""); });
      var g = document.createElement("div");
      g.className = "grid";
      g.appendChild(bars("benchmark-lead-time", "Lead time (days), " + data.benchmark.period, {
        categories: names, series: [{name: "days", values: orgs.map(function (o) { return o.figures.lead_time_days; })}]}));
      g.appendChild(bars("benchmark-no-show", "No-show, " + data.benchmark.period, {
        categories: names, series: [
          {name: "intake", values: orgs.map(function (o) { return o.figures.no_show_rate_intake; })},
          {name: "follow-up", values: orgs.map(function (o) { return o.figures.no_show_rate_follow_up; })}], format: "pct"}));
      var rows = Object.keys(data.benchmark.figures).map(function (k) {
        return "<tr><td>" + data.benchmark.figures[k] + "</td>" + orgs.map(function (o) {
          var v = o.figures[k];
          return "<td>" + (k.indexOf("rate") >= 0 || k.indexOf("share") >= 0 ? pct(v) : num(v)) + "</td>";
        }).join("") + "</tr>";
      }).join("");
      bench.innerHTML = "<h2>Benchmark: your snapshot next to other organisations'</h2>" +
        "<p class=\"note\">Only aggregates; cells with fewer than 10 closed cases are left out.</p>" +
        "<table><tr><th>Figure</th>" + names.map(function (n) { return "<th>" + n + "</th>"; }).join("") + "</tr>" + rows + "</table>";
      bench.appendChild(g);
    } else {
      bench.innerHTML = "<h2>Benchmark</h2><p class=\"note\">No snapshots shared yet.</p>";
    }
    var bc = data.business_case;
    var years = bc.years.map(function (y) { return "year " + y.year; });
    document.getElementById("business").innerHTML = "<h2>Business case</h2><p class=\"note\">Hours from " +
      (bc.hours_source === "measured" ? "your own registrations (" + bc.measured.period + ")" : "the model's assumptions") +
      "; € " + bc.assumptions.hourly_rate + " an hour. Break-even: " +
      (bc.break_even_year ? "year " + bc.break_even_year : "not within " + bc.years.length + " years") + ".</p>";
    var bg = document.createElement("div");
    bg.className = "grid";
    bg.appendChild(bars("business-case", "Savings, costs and cumulative balance per year", {
      categories: years, series: [
        {name: "savings", values: bc.years.map(function (y) { return y.savings; }), color: "#5a9e6f"},
        {name: "costs", values: bc.years.map(function (y) { return y.costs; }), color: "#e08a2e"},
        {name: "cumulative balance", values: bc.years.map(function (y) { return y.cumulative_balance; }), color: "#2f6f9f"}],
      format: "euro"}));
    document.getElementById("business").appendChild(bg);
    document.body.dataset.rendered = "yes";
  }

  function problem(message) {
    document.getElementById("problem").textContent = message;
    document.getElementById("login").style.display = "block";
  }

  function load(key) {
    fetch("/v1/dashboard-data", {headers: {Authorization: "Bearer " + key}})
      .then(function (r) {
        if (r.status === 401 || r.status === 403) throw new Error("This key is not valid for analytics.");
        if (!r.ok) throw new Error("The figures could not be loaded (" + r.status + ").");
        return r.json();
      })
      .then(function (data) { sessionStorage.setItem("ketenbus-key", key); render(data); })
      .catch(function (e) { problem(e.message); });
  }

  var embedded = document.getElementById("dashboard-data");
  if (embedded) { render(JSON.parse(embedded.textContent)); return; }
  var match = /[#&]key=([^&]+)/.exec(location.hash);
  if (match) { history.replaceState(null, "", location.pathname); }
  var key = match ? decodeURIComponent(match[1]) : sessionStorage.getItem("ketenbus-key");
  document.getElementById("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    load(document.getElementById("key").value.trim());
  });
  if (key) load(key); else problem("");
})();

/*
 * The HTML size report's client (src/size/html.ts inlines this file after
 * d3-hierarchy's UMD build, which defines window.d3): zoomable treemaps of
 * the flash and the RAM tree of a SizeReport, read from the JSON block
 * #xip-data. Plain ES2019 without modules, so the page works from a file://
 * URL with nothing else around it. Data only ever reaches the page through
 * textContent and setAttribute, never as markup. Nothing is logged: the page
 * is tested for a silent console.
 */
(function () {
  'use strict';

  /** Height of a treemap in CSS pixels; its width follows its container. */
  var HEIGHT = 520;
  /** Room above a group's children for its label. */
  var LABEL_TOP = 16;
  /** Rows of the summary table under a treemap. */
  var TOP_ROWS = 25;
  /** Approximate advance of one character of the 11 px label font: labels are cut to fit rather than measured. */
  var CHAR_W = 6.5;
  /** One hue per top-level region, in the order the tree lists them. */
  var HUES = [212, 28, 140, 280, 352, 186, 48, 320, 100, 250];
  /** Lightness by kind: deeper levels lighter, so a group's frame stands out from its children. */
  var LIGHT = { total: 55, region: 60, subsystem: 68, object: 77, symbol: 86, file: 80 };
  var FREE_FILL = '#e3e6e9';
  var OTHER_FILL = '#a9b0b7';

  var report = { ready: false, treemaps: 0, rects: 0 };
  window.__xipReport = report;

  function group3(n) {
    var s = String(Math.round(Math.abs(n)));
    return (n < 0 ? '-' : '') + s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  function kibText(bytes) {
    var k = (bytes / 1024).toFixed(1).split('.');
    return group3(Number(k[0])) + '.' + k[1] + ' KiB';
  }

  /** Short size for a cell's label. */
  function shortSize(bytes) {
    if (bytes < 1024) return bytes + ' B';
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + ' KiB';
    return (bytes / 1048576).toFixed(2) + ' MiB';
  }

  function share(part, whole) {
    if (!(whole > 0)) return '-';
    var p = (100 * part) / whole;
    return (p > 0 && p < 1 ? p.toFixed(2) : p.toFixed(1)) + '%';
  }

  /** `s` cut with an ellipsis to about `px` pixels; '' when not even three characters fit. */
  function fit(s, px) {
    var n = Math.floor(px / CHAR_W);
    if (n < 3) return '';
    return s.length <= n ? s : s.slice(0, n - 1) + '\u2026';
  }

  function hasKids(node) {
    return Boolean(node.children && node.children.length);
  }

  function html(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /**
   * The tree cut two levels below `node`: the layout and the drawing only
   * ever see these, so a zoom level costs what it shows, not the thousands
   * of symbols further down.
   */
  function cut(node, depth) {
    var kids = depth < 2 && hasKids(node) ? node.children.map(function (c) { return cut(c, depth + 1); }) : null;
    return { node: node, children: kids };
  }

  function makeTreemap(container, root, ns) {
    var svg = container.querySelector('svg.map');
    var chart = container.querySelector('.chart');
    var crumbs = container.querySelector('.crumbs');
    var legend = container.querySelector('.legend');
    var summary = container.querySelector('table.summary');
    /** The zoom: the nodes from the root down to the one that fills the treemap. */
    var path = [root];
    var width = 0;
    var hueOf = new Map();
    (root.children || []).forEach(function (c, i) { hueOf.set(c, HUES[i % HUES.length]); });

    function fill(node, region) {
      if (node.kind === 'free') return FREE_FILL;
      if (node.kind === 'other') return OTHER_FILL;
      var hue = hueOf.has(region) ? hueOf.get(region) : HUES[0];
      var light = Object.prototype.hasOwnProperty.call(LIGHT, node.kind) ? LIGHT[node.kind] : 75;
      return 'hsl(' + hue + ', 50%, ' + light + '%)';
    }

    function el(tag, attrs) {
      var e = document.createElementNS(ns, tag);
      for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, String(attrs[k]));
      return e;
    }

    function zoomTo(newPath) {
      path = newPath;
      api.touched();
      render();
    }

    function tooltip(node, parent, names) {
      var lines = [
        names.join(' / '),
        group3(node.bytes) + ' bytes (' + kibText(node.bytes) + ')',
        parent && parent !== root
          ? share(node.bytes, parent.bytes) + ' of ' + parent.name + ', ' + share(node.bytes, root.bytes) + ' of ' + root.name
          : share(node.bytes, root.bytes) + ' of ' + root.name,
        'kind: ' + node.kind,
      ];
      if (node.estimated) lines.push('estimated');
      if (node.note) lines.push(node.note);
      if (hasKids(node)) lines.push('click to zoom in');
      return lines.join('\n');
    }

    /** A cell's label: "mm/slub.o" inside "mm" says "slub.o", the tooltip has the whole name. */
    function labelName(node, parent) {
      var p = parent.name + '/';
      return node.name.length > p.length && node.name.slice(0, p.length) === p ? node.name.slice(p.length) : node.name;
    }

    /** A group whose frame holds its children and, when there is room, its label above them. */
    function labelled(d) {
      return d.depth > 0 && Boolean(d.children) && d.y1 - d.y0 > LABEL_TOP + 6 && d.x1 - d.x0 > 24;
    }

    function drawMap() {
      var zoom = path[path.length - 1];
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      svg.setAttribute('width', String(width));
      svg.setAttribute('height', String(HEIGHT));
      svg.setAttribute('viewBox', '0 0 ' + width + ' ' + HEIGHT);
      var tree = window.d3
        .hierarchy(cut(zoom, 0), function (d) { return d.children; })
        // Inner nodes' bytes already are their children's sum: count the leaves only.
        .sum(function (d) { return d.children && d.children.length ? 0 : Math.max(0, d.node.bytes); })
        .sort(function (a, b) { return b.value - a.value; });
      window.d3
        .treemap()
        .tile(window.d3.treemapSquarify)
        .size([width, HEIGHT])
        .paddingInner(1)
        .paddingOuter(function (d) { return d.depth === 0 ? 0 : 1; })
        .paddingTop(function (d) { return d.depth === 0 ? 0 : labelled(d) ? LABEL_TOP : 1; })(tree);

      var frag = document.createDocumentFragment();
      var base = path.map(function (n) { return n.name; });
      tree.names = base;
      var drawn = 0;
      tree.eachBefore(function (d) {
        if (d.depth === 0) return;
        d.names = d.parent.names.concat([d.data.node.name]);
        var w = d.x1 - d.x0;
        var h = d.y1 - d.y0;
        if (w < 1 || h < 1) return;
        var node = d.data.node;
        var parent = d.parent.data.node;
        var region = path.length > 1 ? path[1] : d.depth === 1 ? node : d.parent.data.node;
        var cls = 'node' + (hasKids(node) ? ' zoomable' : '') + (node.estimated ? ' estimated' : '');
        var g = el('g', { class: 'cell' });
        var title = el('title', {});
        title.textContent = tooltip(node, parent, d.names);
        var rect = el('rect', {
          class: cls,
          x: d.x0.toFixed(1),
          y: d.y0.toFixed(1),
          width: w.toFixed(1),
          height: h.toFixed(1),
          fill: fill(node, region),
          'data-path': d.names.join(' / '),
          'data-kind': node.kind,
          'data-bytes': node.bytes,
        });
        if (hasKids(node)) {
          var target = d;
          rect.addEventListener('click', function () {
            var below = target.ancestors().reverse().slice(1).map(function (a) { return a.data.node; });
            zoomTo(path.concat(below));
          });
        }
        g.appendChild(title);
        g.appendChild(rect);
        var name = labelName(node, parent);
        if (labelled(d)) {
          // The size only when the whole name fits with it: a name cut short to show a number says less.
          var full = name + '  ' + shortSize(node.bytes);
          var t = full.length * CHAR_W <= w - 6 ? full : fit(name, w - 6);
          if (t) g.appendChild(text(d.x0 + 3, d.y0 + 12, t, 'group'));
        } else if (!d.children && w >= 24 && h >= 13) {
          var n = fit(name, w - 6);
          if (n) g.appendChild(text(d.x0 + 3, d.y0 + 12, n, ''));
          if (n && h >= 26) {
            var s = fit(shortSize(node.bytes), w - 6);
            if (s) g.appendChild(text(d.x0 + 3, d.y0 + 24, s, 'bytes'));
          }
        }
        frag.appendChild(g);
        drawn++;
      });
      svg.appendChild(frag);
      chart.classList.toggle('is-empty', drawn === 0);
      var empty = chart.querySelector('.empty');
      if (drawn === 0 && !empty) chart.appendChild(html('div', 'empty', 'Nothing to draw: ' + zoom.name + ' has no bytes to show.'));
      if (drawn > 0 && empty) chart.removeChild(empty);
    }

    function text(x, y, s, cls) {
      var t = el('text', { x: x.toFixed(1), y: y.toFixed(1) });
      if (cls) t.setAttribute('class', cls);
      t.textContent = s;
      return t;
    }

    function drawCrumbs() {
      while (crumbs.firstChild) crumbs.removeChild(crumbs.firstChild);
      var up = html('button', 'up', '\u2191 up');
      up.type = 'button';
      up.title = 'Zoom out one level (Esc)';
      up.disabled = path.length < 2;
      up.addEventListener('click', function () { api.up(); });
      crumbs.appendChild(up);
      path.forEach(function (node, i) {
        if (i > 0) crumbs.appendChild(html('span', 'sep', '/'));
        if (i === path.length - 1) {
          crumbs.appendChild(html('span', 'here', node.name));
          return;
        }
        var b = html('button', 'crumb', node.name);
        b.type = 'button';
        b.addEventListener('click', function () { zoomTo(path.slice(0, i + 1)); });
        crumbs.appendChild(b);
      });
      var zoom = path[path.length - 1];
      crumbs.appendChild(html('span', 'size', group3(zoom.bytes) + ' bytes (' + kibText(zoom.bytes) + ')' + (path.length > 1 ? ', ' + share(zoom.bytes, root.bytes) + ' of ' + root.name : '')));
    }

    function drawLegend() {
      if (!legend) return;
      while (legend.firstChild) legend.removeChild(legend.firstChild);
      (root.children || []).forEach(function (c) {
        var item = html('span', 'item');
        var sw = html('span', 'swatch');
        sw.style.background = fill(c, c);
        item.appendChild(sw);
        item.appendChild(document.createTextNode(c.name + ' ' + shortSize(c.bytes)));
        legend.appendChild(item);
      });
    }

    function cell(tr, tag, cls, s) {
      var c = html(tag, cls, s);
      tr.appendChild(c);
      return c;
    }

    function drawSummary() {
      while (summary.firstChild) summary.removeChild(summary.firstChild);
      var zoom = path[path.length - 1];
      var kids = (zoom.children || []).slice().sort(function (a, b) { return b.bytes - a.bytes; });
      var caption = html('caption', '', kids.length > TOP_ROWS ? 'The ' + TOP_ROWS + ' largest of the ' + group3(kids.length) + ' parts of ' + zoom.name : 'The parts of ' + zoom.name);
      summary.appendChild(caption);
      var head = html('thead');
      var hr = html('tr');
      cell(hr, 'th', '', 'name');
      cell(hr, 'th', '', 'kind');
      cell(hr, 'th', 'num', 'bytes');
      cell(hr, 'th', 'num', 'KiB');
      cell(hr, 'th', 'num', 'share');
      head.appendChild(hr);
      summary.appendChild(head);
      var body = html('tbody');
      kids.slice(0, TOP_ROWS).forEach(function (c) {
        var tr = html('tr');
        var nameCell = cell(tr, 'td', 'name');
        var sw = html('span', 'swatch');
        sw.style.background = fill(c, path.length > 1 ? path[1] : c);
        nameCell.appendChild(sw);
        if (hasKids(c)) {
          var b = html('button', '', c.name);
          b.type = 'button';
          b.title = 'Zoom into ' + c.name;
          b.addEventListener('click', function () { zoomTo(path.concat([c])); });
          nameCell.appendChild(b);
        } else {
          nameCell.appendChild(document.createTextNode(c.name));
        }
        if (c.estimated) nameCell.appendChild(document.createTextNode(' (estimated)'));
        if (c.note) nameCell.title = c.note;
        cell(tr, 'td', '', c.kind);
        cell(tr, 'td', 'num', group3(c.bytes));
        cell(tr, 'td', 'num', kibText(c.bytes).replace(' KiB', ''));
        cell(tr, 'td', 'num', share(c.bytes, zoom.bytes));
        body.appendChild(tr);
      });
      if (kids.length > TOP_ROWS) {
        var rest = kids.slice(TOP_ROWS).reduce(function (s, c) { return s + c.bytes; }, 0);
        var tr = html('tr', 'more');
        cell(tr, 'td', '', '\u2026 ' + group3(kids.length - TOP_ROWS) + ' more');
        cell(tr, 'td', '', '');
        cell(tr, 'td', 'num', group3(rest));
        cell(tr, 'td', 'num', kibText(rest).replace(' KiB', ''));
        cell(tr, 'td', 'num', share(rest, zoom.bytes));
        body.appendChild(tr);
      }
      if (kids.length === 0) {
        var none = html('tr', 'more');
        var td = cell(none, 'td', '', zoom.name + ' has no parts.');
        td.colSpan = 5;
        body.appendChild(none);
      }
      summary.appendChild(body);
    }

    function render() {
      width = Math.max(200, Math.floor(chart.clientWidth || 960));
      drawCrumbs();
      drawMap();
      drawSummary();
      report.rects = document.querySelectorAll('svg.map rect.node').length;
    }

    var api = {
      render: render,
      drawLegend: drawLegend,
      /** Called on every zoom: Esc goes back in the treemap last used. */
      touched: function () {},
      /** Zoom out one level; false when already at the root. */
      up: function () {
        if (path.length < 2) return false;
        zoomTo(path.slice(0, -1));
        return true;
      },
      resize: function () {
        if (Math.floor(chart.clientWidth || 960) !== width) render();
      },
    };
    return api;
  }

  function fail(message) {
    report.ready = false;
    report.error = message;
    var box = document.querySelector('.treemap .chart') || document.body;
    box.appendChild(html('div', 'empty', message));
  }

  function main() {
    var dataEl = document.getElementById('xip-data');
    if (!dataEl) return fail('The report data (#xip-data) is missing.');
    var input = JSON.parse(dataEl.textContent || 'null');
    if (!input || !input.size) return fail('The report data holds no size report.');
    if (!window.d3 || typeof window.d3.treemap !== 'function') return fail('d3-hierarchy did not load.');
    var maps = [];
    var active = null;
    var containers = document.querySelectorAll('.treemap[data-tree]');
    for (var i = 0; i < containers.length; i++) {
      var c = containers[i];
      var tree = input.size[c.getAttribute('data-tree')];
      var svg = c.querySelector('svg.map');
      if (!tree || !svg) continue;
      // The HTML parser put the server-written <svg> into the SVG namespace: new elements take it from there.
      var m = makeTreemap(c, tree, svg.namespaceURI);
      m.touched = (function (self) { return function () { active = self; }; })(m);
      maps.push(m);
    }
    maps.forEach(function (m) { m.drawLegend(); m.render(); });
    active = maps[0] || null;

    document.addEventListener('keydown', function (e) {
      if (e.key === 'Escape' && active && active.up()) e.preventDefault();
    });
    var pending = false;
    window.addEventListener('resize', function () {
      if (pending) return;
      pending = true;
      window.requestAnimationFrame(function () {
        pending = false;
        maps.forEach(function (m) { m.resize(); });
      });
    });

    report.treemaps = maps.length;
    report.rects = document.querySelectorAll('svg.map rect.node').length;
    report.ready = true;
  }

  try {
    main();
  } catch (e) {
    fail('The report could not be drawn: ' + (e && e.message ? e.message : String(e)));
  }
})();

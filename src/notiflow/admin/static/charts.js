// Charts of messages per minute, drawn with uPlot (vendored) from JSON under /ui.
//
// Each <figure data-chart> names its data (data-source: a Timeline, see notiflow.stats.schemas),
// the words of its empty state (data-empty) and how often it refreshes (data-refresh, seconds; 0:
// never). A mailing's chart stops refreshing once the mailing is no longer running. Times are
// shown in UTC. The chart follows its container's width (phones included).
(() => {
  "use strict";

  const HEIGHT = 240;
  const MIN_MINUTES = 10; // a mailing's first minutes are not stretched over the whole width
  const SERIES = [
    { label: "sent", stroke: "#1d7a3a", fill: "rgba(29, 122, 58, 0.12)", width: 2 },
    { label: "failed", stroke: "#b3261e", width: 2 },
  ];

  function columns(timeline) {
    const minutes = [];
    const sent = [];
    const failed = [];
    for (const point of timeline.points) {
      minutes.push(Date.parse(point.at) / 1000);
      sent.push(point.sent);
      failed.push(point.failed);
    }
    // Before a mailing's first outcome nothing was sent: show a few of those minutes as zeros.
    while (minutes.length > 0 && minutes.length < MIN_MINUTES) {
      minutes.unshift(minutes[0] - 60);
      sent.unshift(0);
      failed.unshift(0);
    }
    return [minutes, sent, failed];
  }

  // Ticks of the x axis, in seconds: whole minutes at least.
  const TIME_STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const utc = (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");
  const hourMinute = uPlot.fmtDate("{HH}:{mm}");
  const day = uPlot.fmtDate("{YYYY}-{MM}-{DD}");

  // 24-hour UTC times under the x axis, with the date under the first one of each day.
  function timeLabels(_plot, splits) {
    return splits.map((seconds, n) => {
      const date = utc(seconds);
      const newDay = n === 0 || day(date) !== day(utc(splits[n - 1]));
      return newDay ? `${hourMinute(date)}\n${day(date)}` : hourMinute(date);
    });
  }

  // Away from the cursor (and on a phone), the legend shows the latest minute.
  function showLatest(plot) {
    if (plot.cursor.idx == null && plot.data[0].length > 0) {
      plot.setLegend({ idx: plot.data[0].length - 1 });
    }
  }

  function options(width) {
    return {
      width,
      height: HEIGHT,
      tzDate: utc,
      hooks: { ready: [showLatest], setData: [showLatest], setCursor: [showLatest] },
      scales: { y: { range: (_plot, _min, max) => [0, Math.max(1, max)] } },
      axes: [
        { label: "minute (UTC)", values: timeLabels, incrs: TIME_STEPS },
        { label: "messages per minute" },
      ],
      series: [{ label: "UTC", value: "{YYYY}-{MM}-{DD} {HH}:{mm}" }, ...SERIES],
    };
  }

  class Chart {
    constructor(figure) {
      this.figure = figure;
      this.area = figure.querySelector(".chart-plot");
      this.state = figure.querySelector(".chart-state");
      this.source = figure.dataset.source;
      this.refresh = Number(figure.dataset.refresh || 0) * 1000;
      this.plot = null;
      new ResizeObserver(() => this.resize()).observe(figure);
    }

    width() {
      return Math.max(200, Math.floor(this.figure.clientWidth));
    }

    resize() {
      if (this.plot && this.plot.width !== this.width()) {
        this.plot.setSize({ width: this.width(), height: HEIGHT });
      }
    }

    say(text, isError) {
      this.state.textContent = text;
      this.state.classList.toggle("chart-error", Boolean(isError));
    }

    draw(timeline) {
      if (timeline.sent + timeline.failed === 0) {
        if (this.plot) {
          this.plot.destroy();
          this.plot = null;
        }
        this.figure.dataset.state = "empty";
        this.say(this.figure.dataset.empty);
        return;
      }
      const data = columns(timeline);
      if (this.plot) {
        this.plot.setData(data);
      } else {
        this.plot = new uPlot(options(this.width()), data, this.area);
      }
      this.figure.dataset.state = "drawn";
      const minutes = timeline.points.length;
      const span = minutes === 1 ? "in 1 minute" : `in these ${minutes} minutes`;
      this.say(`${timeline.sent} sent, ${timeline.failed} failed ${span}.`);
    }

    async load() {
      let response;
      try {
        response = await fetch(this.source, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          cache: "no-store",
        });
      } catch (_error) {
        this.say("The chart could not be loaded: is Notiflow running?", true);
        return true; // try again later
      }
      if (response.status === 401) {
        this.say("Your session ended: reload the page to sign in again.", true);
        return false;
      }
      if (!response.ok) {
        this.say(`The chart could not be loaded (HTTP ${response.status}).`, true);
        return false;
      }
      const timeline = await response.json();
      this.draw(timeline);
      // A mailing's chart changes only while the mailing runs; the dashboard's always may.
      return timeline.status === null || timeline.status === "running";
    }

    async run() {
      const again = await this.load();
      if (again && this.refresh > 0) {
        window.setTimeout(() => this.run(), this.refresh);
      }
    }
  }

  function start() {
    for (const figure of document.querySelectorAll("figure[data-chart]")) {
      new Chart(figure).run();
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

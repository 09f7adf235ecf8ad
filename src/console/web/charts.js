import { html } from './html.js';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { get } from './api.js';

const SERIES = [
  { key: 'cpu', label: 'CPU % of one core', color: '#2563eb' },
  { key: 'memoryMB', label: 'memory MiB', color: '#16a34a' },
  { key: 'pids', label: 'processes', color: '#9333ea' },
];

/** One plugin's history (up to an hour, kept by the controller), redrawn every 2 s. */
export function Charts({ plugin }) {
  const box = useRef(null);
  useEffect(() => {
    let plots = [];
    let stopped = false;
    const draw = async () => {
      let h;
      try {
        h = await get(`/api/plugins/${encodeURIComponent(plugin)}/history?seconds=3600`);
      } catch {
        return;
      }
      if (stopped || !box.current) return;
      if (plots.length === 0) {
        const width = Math.max(300, Math.floor((box.current.clientWidth - 24) / 3));
        plots = SERIES.map(
          (s) =>
            new uPlot(
              { title: s.label, width, height: 160, series: [{}, { label: s.label, stroke: s.color, fill: `${s.color}22`, spanGaps: false }], axes: [{}, { size: 50 }], legend: { show: false } },
              [h.t, h[s.key]],
              box.current,
            ),
        );
      } else plots.forEach((p, i) => p.setData([h.t, h[SERIES[i].key]]));
    };
    draw();
    const timer = setInterval(draw, 2000);
    return () => {
      stopped = true;
      clearInterval(timer);
      plots.forEach((p) => p.destroy());
    };
  }, [plugin]);
  return html`<div class="charts" data-testid="charts" ref=${box}></div>`;
}

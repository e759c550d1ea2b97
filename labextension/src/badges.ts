/** Badges on tagged cells: a CSS class per mlnb tag on the cell node and a small label. */
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

import { badgeLabel, MLNB_TAGS, mlnbTags, readTags, tagClass, TAG_HELP, toggleTag } from './tags';

const BADGES = 'mlnb-badges';

/** The tags of a cell, as stored in its metadata. */
export function cellTags(cell: Cell): string[] {
  return readTags(cell.model.getMetadata('tags'));
}

/** Switch `tag` on or off on `cell` (see tags.ts for the rules). */
export function toggleCellTag(cell: Cell, tag: string): void {
  const next = toggleTag(cellTags(cell), tag);
  if (next.length) {
    cell.model.setMetadata('tags', next);
  } else {
    cell.model.deleteMetadata('tags');
  }
}

/** Show the cell's mlnb tags on it (idempotent: called whenever metadata may have changed). */
export function renderBadges(cell: Cell): void {
  const tags = mlnbTags(cellTags(cell));
  for (const tag of MLNB_TAGS) {
    cell.node.classList.toggle(tagClass(tag), tags.includes(tag));
  }
  cell.node.classList.toggle('mlnb-tagged', tags.length > 0);
  let holder = cell.node.querySelector(`:scope > .${BADGES}`) as HTMLElement | null;
  if (!tags.length) {
    holder?.remove();
    return;
  }
  if (!holder) {
    holder = document.createElement('div');
    holder.className = BADGES;
    cell.node.appendChild(holder);
  }
  const wanted = tags.map(badgeLabel).join(',');
  if (holder.dataset.tags === wanted) {
    return;
  }
  holder.dataset.tags = wanted;
  holder.replaceChildren(
    ...tags.map(tag => {
      const badge = document.createElement('span');
      badge.className = `mlnb-badge ${tagClass(tag)}`;
      badge.textContent = badgeLabel(tag);
      badge.title = `${tag}: ${TAG_HELP[tag]}`;
      return badge;
    })
  );
}

/** Keep the badges of every cell of `panel` up to date. */
export function trackBadges(panel: NotebookPanel): void {
  const refresh = (): void => {
    for (const cell of panel.content.widgets) {
      renderBadges(cell);
    }
  };
  const watched = new WeakSet<object>();
  const watch = (): void => {
    for (const cell of panel.content.widgets) {
      if (!watched.has(cell.model)) {
        watched.add(cell.model);
        cell.model.metadataChanged.connect(() => renderBadges(cell));
      }
    }
    refresh();
  };
  panel.context.ready
    .then(() => {
      watch();
      panel.content.model?.cells.changed.connect(() => requestAnimationFrame(watch));
    })
    .catch(() => undefined);
}

/**
 * mlnb's cell tags and the rules for toggling them (no JupyterLab imports: Jest tests it).
 *
 * `mlnb:export`, `mlnb:example` and `mlnb:skip` exclude each other (`mlnb export` refuses a
 * cell with two of them), so turning one on turns the others off. `parameters` is papermill's
 * and combines with any of them. Other tags on the cell are kept as they are.
 */

export const PARAMETERS = 'parameters';
export const EXPORT = 'mlnb:export';
export const EXAMPLE = 'mlnb:example';
export const SKIP = 'mlnb:skip';

export const MLNB_TAGS: readonly string[] = [PARAMETERS, EXPORT, EXAMPLE, SKIP];

const EXCLUSIVE: readonly string[] = [EXPORT, EXAMPLE, SKIP];

/** What each tag means, for tooltips. */
export const TAG_HELP: Record<string, string> = {
  [PARAMETERS]: 'papermill parameters: defaults, overridden by injected values, logged as params',
  [EXPORT]: 'goes into the service: imports, preprocessing, model loading, endpoints',
  [EXAMPLE]: 'an example request: the OpenAPI example and the export check',
  [SKIP]: 'never runs in pipelines or services (plots, exploration)'
};

/** The short label of a badge: "export" for "mlnb:export". */
export function badgeLabel(tag: string): string {
  return tag.startsWith('mlnb:') ? tag.slice('mlnb:'.length) : tag === PARAMETERS ? 'params' : tag;
}

/** The CSS class a tagged cell gets: "mlnb-tag-export", "mlnb-tag-parameters". */
export function tagClass(tag: string): string {
  return 'mlnb-tag-' + (tag === PARAMETERS ? 'parameters' : badgeLabel(tag));
}

/** The tags as stored in cell metadata, whatever was there (missing, not a list, junk). */
export function readTags(value: unknown): string[] {
  if (!Array.isArray(value)) {
    return [];
  }
  return value.filter((t): t is string => typeof t === 'string');
}

/** mlnb's tags among `tags`, in vocabulary order. */
export function mlnbTags(tags: readonly string[]): string[] {
  return MLNB_TAGS.filter(tag => tags.includes(tag));
}

/**
 * `tags` with `tag` switched on or off. Switching on one of the exclusive mlnb tags switches
 * the others off. The order of the other tags is kept; a new tag goes last. Returns a new list.
 */
export function toggleTag(tags: readonly string[], tag: string): string[] {
  if (!MLNB_TAGS.includes(tag)) {
    throw new Error(`${tag} is not an mlnb tag; use one of ${MLNB_TAGS.join(', ')}`);
  }
  if (tags.includes(tag)) {
    return tags.filter(t => t !== tag);
  }
  const dropped = EXCLUSIVE.includes(tag) ? EXCLUSIVE : [];
  const kept = tags.filter(t => !dropped.includes(t));
  return [...kept, tag];
}

/** A tag that cannot apply to this cell type, with the reason; null when it can. */
export function refusal(cellType: string, tag: string): string | null {
  if (cellType !== 'code') {
    return `only code cells can be tagged ${tag}`;
  }
  return null;
}

import {
  badgeLabel,
  EXAMPLE,
  EXPORT,
  mlnbTags,
  PARAMETERS,
  readTags,
  refusal,
  SKIP,
  tagClass,
  toggleTag
} from '../src/tags';

describe('toggleTag', () => {
  it('adds a missing tag at the end and keeps the others in order', () => {
    expect(toggleTag(['keep', 'me'], EXPORT)).toEqual(['keep', 'me', EXPORT]);
  });

  it('removes a present tag and nothing else', () => {
    expect(toggleTag(['a', EXPORT, 'b'], EXPORT)).toEqual(['a', 'b']);
  });

  it('makes export, example and skip exclude each other', () => {
    expect(toggleTag([EXPORT, 'x'], SKIP)).toEqual(['x', SKIP]);
    expect(toggleTag([SKIP], EXAMPLE)).toEqual([EXAMPLE]);
    expect(toggleTag([EXAMPLE, PARAMETERS], EXPORT)).toEqual([PARAMETERS, EXPORT]);
  });

  it('lets parameters combine with any mlnb tag', () => {
    expect(toggleTag([EXPORT], PARAMETERS)).toEqual([EXPORT, PARAMETERS]);
    expect(toggleTag([PARAMETERS], SKIP)).toEqual([PARAMETERS, SKIP]);
  });

  it('does not change the list it was given', () => {
    const tags = [EXPORT];
    toggleTag(tags, SKIP);
    expect(tags).toEqual([EXPORT]);
  });

  it('refuses a tag outside the vocabulary, naming the vocabulary', () => {
    expect(() => toggleTag([], 'mlnb:exprot')).toThrow(
      'mlnb:exprot is not an mlnb tag; use one of parameters, mlnb:export, mlnb:example, mlnb:skip'
    );
  });
});

describe('reading tags', () => {
  it('accepts whatever the metadata holds', () => {
    expect(readTags(undefined)).toEqual([]);
    expect(readTags('mlnb:export')).toEqual([]);
    expect(readTags([EXPORT, 3, null, 'x'])).toEqual([EXPORT, 'x']);
  });

  it('lists mlnb tags in vocabulary order', () => {
    expect(mlnbTags(['x', SKIP, PARAMETERS])).toEqual([PARAMETERS, SKIP]);
  });
});

describe('labels', () => {
  it('gives short badge labels and CSS classes', () => {
    expect(badgeLabel(EXPORT)).toBe('export');
    expect(badgeLabel(PARAMETERS)).toBe('params');
    expect(tagClass(PARAMETERS)).toBe('mlnb-tag-parameters');
    expect(tagClass(EXAMPLE)).toBe('mlnb-tag-example');
  });

  it('only lets code cells be tagged', () => {
    expect(refusal('code', EXPORT)).toBeNull();
    expect(refusal('markdown', EXPORT)).toBe('only code cells can be tagged mlnb:export');
  });
});

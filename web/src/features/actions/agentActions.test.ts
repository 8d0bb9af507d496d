import { describe, expect, it } from 'vitest';
import { PROMPT_MAX, actionBody, panelTarget } from './agentActions';

describe('actionBody', () => {
  it('sends the prompt only for execute, and the reason when there is one', () => {
    expect(actionBody('execute', '  summarise the logs ', '')).toEqual({ body: { prompt: 'summarise the logs' } });
    expect(actionBody('pause', 'ignored', ' maintenance ')).toEqual({ body: { reason: 'maintenance' } });
    expect(actionBody('terminate', '', '')).toEqual({ body: {} });
  });

  it('names the field at fault', () => {
    expect(actionBody('execute', '   ', 'why')).toEqual({ error: 'Prompt: write what the agent should do.' });
    expect(actionBody('execute', 'x'.repeat(PROMPT_MAX + 1), '')).toHaveProperty('error', expect.stringMatching(/^Prompt: at most/));
    expect(actionBody('resume', '', 'r'.repeat(2000))).toHaveProperty('error', expect.stringMatching(/^Reason: at most 1024/));
  });
});

describe('panelTarget', () => {
  it('tells its listeners when the agent changes, and only then', () => {
    let calls = 0;
    const off = panelTarget.subscribe(() => calls++);
    panelTarget.set('a');
    panelTarget.set('a');
    panelTarget.set(null);
    off();
    panelTarget.set('b');
    expect(calls).toBe(2);
    panelTarget.set(null);
  });
});

// LivenessBadge.tsx - online, stale or dead, as a coloured dot and its word.
import type { Liveness } from '../lib/types';

export function LivenessBadge({ liveness }: { liveness: Liveness }) {
  return (
    <span className={`liveness live-${liveness}`} data-liveness={liveness}>
      <span className="dot" aria-hidden="true" />
      {liveness}
    </span>
  );
}

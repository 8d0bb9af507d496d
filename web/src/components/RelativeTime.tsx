// RelativeTime.tsx - "12 s ago", kept current by the shared clock.
import { clockTime, relativeTime } from '../lib/format';
import { useNow } from '../lib/clock';

export function RelativeTime({ iso }: { iso: string | null }) {
  const now = useNow();
  return <span title={clockTime(iso)}>{relativeTime(iso, now)}</span>;
}

/**
 * The body of a notification, without Temporal: Slack-compatible JSON (`text` with mrkdwn links, which Mattermost and
 * Rocket.Chat take as well) or a Microsoft Teams MessageCard.
 */
import type { NotificationTarget, NotifyInput } from '../../contract/types';

const TITLES: Record<NotifyInput['event'], string> = {
  'awaiting-approval': '⏳ awaits approval',
  'gate-failed': '❌ a gate failed',
  released: '✅ released',
  rejected: '🚫 rejected',
  expired: '⌛ expired',
  failed: '⛔ failed',
  'rollout-stalled': '⏸️ rollout stalled',
  'monitoring-breached': '📉 monitoring breached',
  'rolled-back': '↩️ rolled back',
};

/** The Temporal UI page of a release. */
export function releaseLink(uiUrl: string, namespace: string, releaseId: string): string {
  return `${uiUrl.replace(/\/+$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(releaseId)}`;
}

export function notificationBody(
  format: NotificationTarget['format'],
  input: NotifyInput,
  link: string,
): Record<string, unknown> {
  const title = `${input.model}@${input.version} → ${input.environment} ${TITLES[input.event]}`;
  if (format === 'teams') {
    return {
      '@type': 'MessageCard',
      '@context': 'https://schema.org/extensions',
      summary: title,
      themeColor: input.event === 'released' ? '2EB67D' : input.event === 'awaiting-approval' ? 'ECB22E' : 'E01E5A',
      title,
      text: [input.headline, ...input.details].map(escapeTeams).join('<br>'),
      potentialAction: [{ '@type': 'OpenUri', name: 'Open the release', targets: [{ os: 'default', uri: link }] }],
    };
  }
  return {
    text: [
      `*${escapeSlack(title)}*: ${escapeSlack(input.headline)}`,
      ...input.details.map(escapeSlack),
      `<${link}|Open the release>`,
    ].join('\n'),
  };
}

/** Slack reads `<…>` as links and `&` as an entity: names and comments must not become either. */
function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function escapeTeams(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * The failure converter used when the payload codec is on: a failure's message and stack trace move into its encoded
 * attributes, a payload, so the codec encrypts them like every other payload. (Temporal's default leaves both in the
 * clear: a failed release's reason, or an activity's error, would be readable in the history.) The history then shows
 * the message "Encoded failure"; the client, `mrel status` and the UI through `mrel codec-server` read the real one.
 *
 * CommonJS and plain JavaScript on purpose: the SDK `require()`s it by path in the client and the workers, and webpack
 * bundles it into the workflow code (`failureConverterPath`), where TypeScript loaders are not in play.
 */
'use strict';
// eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS on purpose (see above)
const { DefaultFailureConverter } = require('@temporalio/common');

/** Present in any workflow bundle built with this converter; the release worker checks a prebuilt bundle for it. */
exports.ENCODED_FAILURES_MARKER = 'modelrelease:encoded-failures:v1';
exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });

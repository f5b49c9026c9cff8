// Replaced by the shared Temporal dev server fixture.
export default function setup(): void {}

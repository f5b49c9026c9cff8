// The image builder is shared with bench/scan-image.ts, which may not import test code.
export * from '../../scripts/docker-images';

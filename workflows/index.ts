/** The workflows this project registers with its workers. */
export { modelReleaseWorkflow } from './model-release';

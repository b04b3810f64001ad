// Every workflow the worker registers; the bundle entry point.
export { customerWorkflow } from './customer';
export { flowRunWorkflow } from './flow-run';
export { sweepWorkflow, segmentSweepWorkflow } from './sweep';

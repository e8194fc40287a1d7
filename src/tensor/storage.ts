// A native allocation shared by a tensor and its views, freed when the last holder lets go.
// Reference counts are explicit (retain/release), never driven by the garbage collector.
import { type Device, type Handle, kernelsFor, normalizeDevice } from './backend.js';

export class Storage {
  private refs = 1;

  private constructor(
    readonly device: Device,
    readonly handle: Handle,
    readonly nbytes: number,
  ) {}

  static allocate(device: Device, nbytes: number): Storage {
    const d = normalizeDevice(device);
    return new Storage(d, kernelsFor(d).alloc(nbytes), nbytes);
  }

  get alive(): boolean {
    return this.refs > 0;
  }

  get holders(): number {
    return this.refs;
  }

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0) kernelsFor(this.device).free(this.handle);
  }
}

/** The part of jsfive (a pure-JS HDF5 reader, no bundled types) that the scanner uses: a file's root attributes. */
declare module 'jsfive' {
  export class File {
    constructor(buffer: ArrayBuffer, filename: string);
    readonly attrs: Record<string, unknown>;
  }
}

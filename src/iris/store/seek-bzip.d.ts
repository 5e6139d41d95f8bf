// The part of seek-bzip (a pure-JavaScript bzip2 decoder, no types of its own) that build-log.ts uses.
declare module "seek-bzip" {
  interface Bunzip {
    /** Decodes a whole .bz2 buffer (every stream with `multistream`); throws on corrupt input. */
    decode(input: Buffer, output?: number, multistream?: boolean): Buffer;
  }
  const bunzip: Bunzip;
  export default bunzip;
}

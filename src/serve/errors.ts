// Errors that become an HTTP response: a status, a one-line reason and optional headers (Retry-After on 503).
// A request error is the client's fault (4xx) and is answered, logged in one line, and never crashes the server.

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** 400 Bad Request with a one-line reason. */
export class RequestError extends HttpError {
  constructor(message: string) {
    super(400, message);
    this.name = 'RequestError';
  }
}

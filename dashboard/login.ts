/** The page shown without a credential: the token login form, or a sentence (basic auth, loopback only). Constant text only. */

/** The HTML of the login / refusal page. */
export function loginPage(method: 'token' | 'basic' | 'none', failed: boolean): string {
  const body =
    method === 'token'
      ? `<form method="post" action="login" class="login">
<label for="token">Dashboard token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
${failed ? '<p class="error" role="alert">That token is not right.</p>' : ''}
</form>`
      : method === 'basic'
        ? '<p>This dashboard needs a user name and password (HTTP basic auth). Reload the page to be asked again.</p>'
        : '<p>This dashboard answers requests from this machine only (loopback).</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tasuki dashboard — sign in</title><link rel="icon" href="data:,"><link rel="stylesheet" href="style.css"></head>
<body class="signin"><main><h1>tasuki</h1>${body}</main></body></html>
`;
}

// Client-side routes: the path decides the view, history.pushState moves between them.
export function routeOf(pathname) {
  if (pathname === "/" || pathname === "") return { name: "home" };
  const notes = pathname.match(/^\/notes\/([a-z0-9-]+)$/);
  if (notes) return { name: "notes", filter: notes[1] };
  return { name: "not-found" };
}

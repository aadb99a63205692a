"""Mining rounds: the round modes and their control (`arms`), the gentle mode's recipe (`gentle`), rounds and `mine compare` (`rounds`)."""

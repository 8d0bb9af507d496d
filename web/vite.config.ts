// vite.config.ts - build into dist/ (served by aeid --web-root); `npm run dev` proxies the API
// and the live feed to an aeid on AEI_HTTP (default 127.0.0.1:3000).
import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

const aeid = `http://${process.env.AEI_HTTP ?? '127.0.0.1:3000'}`;

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/api': aeid,
      '/ws': { target: aeid.replace('http', 'ws'), ws: true },
    },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
  },
});
